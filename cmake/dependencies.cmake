# Every dependency is a Debian package. A missing one stops configuration with the package name
# and the command that installs it (scripts/setup installs them all).
function(gpumem_require found pkg)
  if(NOT ${found})
    message(FATAL_ERROR
      "gpumem: missing dependency '${pkg}'. Install it with:\n"
      "    apt-get install -y ${pkg}\n"
      "or run scripts/setup, which installs everything gpumem needs.")
  endif()
endfunction()

find_package(Threads REQUIRED)

if(NOT CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
  set(CUDAToolkit_ROOT /usr/local/cuda)
endif()
find_package(CUDAToolkit QUIET)
if(NOT CUDAToolkit_FOUND)
  message(FATAL_ERROR
    "gpumem: the CUDA toolkit was not found (looked in /usr/local/cuda). Install CUDA 13 there "
    "or pass -DCUDAToolkit_ROOT=/path/to/cuda.")
endif()

find_package(fmt QUIET)
gpumem_require(fmt_FOUND libfmt-dev)
find_package(nlohmann_json QUIET)
gpumem_require(nlohmann_json_FOUND nlohmann-json3-dev)
find_package(CLI11 QUIET)
gpumem_require(CLI11_FOUND libcli11-dev)
find_package(GTest QUIET)
gpumem_require(GTest_FOUND googletest)
find_package(benchmark QUIET)
gpumem_require(benchmark_FOUND libbenchmark-dev)
# Python's headers, for the test that checks the Python frame reader's layouts against them
# (tests/attribution); Debian's interpreter first, whatever else is on PATH.
if(NOT Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python3_EXECUTABLE /usr/bin/python3)
endif()
find_package(Python3 COMPONENTS Interpreter Development.Module QUIET)
gpumem_require(Python3_Development.Module_FOUND python3-dev)

# The static CUDA runtime: the allocation probe is built against both runtimes (tests/cupti).
if(NOT TARGET CUDA::cudart_static)
  message(FATAL_ERROR
    "gpumem: libcudart_static.a was not found in the CUDA toolkit at ${CUDAToolkit_LIBRARY_DIR}. "
    "Install the toolkit's runtime development files (cuda-cudart-dev-13-0) or pass "
    "-DCUDAToolkit_ROOT=/path/to/cuda.")
endif()

# nvcc-compiled parts (the trainer's CUDA backend) are optional.
set(GPUMEM_HAVE_NVCC OFF)
if(GPUMEM_CUDA_KERNELS AND CUDAToolkit_NVCC_EXECUTABLE AND EXISTS ${CUDAToolkit_NVCC_EXECUTABLE})
  set(GPUMEM_HAVE_NVCC ON)
endif()
message(STATUS "gpumem: CUDA ${CUDAToolkit_VERSION} at ${CUDAToolkit_BIN_DIR}; nvcc parts: ${GPUMEM_HAVE_NVCC}")
if(NOT GPUMEM_HAVE_NVCC)
  if(GPUMEM_CUDA_KERNELS)
    set(_why "nvcc was not found in ${CUDAToolkit_BIN_DIR}; install the toolkit's compiler (cuda-nvcc-13-0)")
  else()
    set(_why "GPUMEM_CUDA_KERNELS=OFF; configure with -DGPUMEM_CUDA_KERNELS=ON")
  endif()
  message(STATUS "gpumem: the trainer's CUDA backend (gpumem-train --backend cuda) is skipped: "
                 "${_why} to build it.")
endif()
