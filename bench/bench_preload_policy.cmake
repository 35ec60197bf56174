# bench_preload_policy: the alloc+free pair through each policy of the preload vs raw, on
# simcuda. The program re-executes itself as the measured worker, which dlopens libcuda.so.1
# (simcuda's, through LD_LIBRARY_PATH). CUDA headers only: no CUDA library is linked.
target_include_directories(${name} SYSTEM PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(${name} PRIVATE ${CMAKE_DL_LIBS})
if(TARGET gpumem_preload AND TARGET simcuda)
  target_compile_definitions(${name} PRIVATE
    GPUMEM_PRELOAD_PATH="$<TARGET_FILE:gpumem_preload>"
    GPUMEM_SIMCUDA_DIR="${GPUMEM_SIMCUDA_DIR}")
  add_dependencies(${name} gpumem_preload simcuda)
endif()
