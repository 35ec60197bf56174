# Shared by the benchmarks that re-execute themselves as a worker on simcuda (bench_util.h): the
# worker dlopens libcuda.so.1 (simcuda's, through LD_LIBRARY_PATH), so CUDA headers only, no CUDA
# library linked; the paths of libgpumem.so and simcuda's folder.
# Included by bench_<x>.cmake, with ${name} the benchmark's target.
target_include_directories(${name} SYSTEM PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(${name} PRIVATE ${CMAKE_DL_LIBS})
target_compile_definitions(${name} PRIVATE
  GPUMEM_PRELOAD_PATH="$<TARGET_FILE:gpumem_preload>"
  GPUMEM_SIMCUDA_DIR="${GPUMEM_SIMCUDA_DIR}")
add_dependencies(${name} gpumem_preload simcuda)
