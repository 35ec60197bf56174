# bench_vs_heaptrack: gpumem's capture, pool-through-preload and analyzer against heaptrack on the
# same number of calls. Re-executes itself as the measured worker (dlopens simcuda's libcuda.so.1).
target_include_directories(${name} SYSTEM PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(${name} PRIVATE ${CMAKE_DL_LIBS})
if(TARGET gpumem_trace_writer)
  target_link_libraries(${name} PRIVATE gpumem_trace_writer)
endif()
if(TARGET gpumem_preload AND TARGET simcuda AND TARGET gpumem)
  target_compile_definitions(${name} PRIVATE
    GPUMEM_PRELOAD_PATH="$<TARGET_FILE:gpumem_preload>"
    GPUMEM_SIMCUDA_DIR="${GPUMEM_SIMCUDA_DIR}"
    GPUMEM_CLI="$<TARGET_FILE:gpumem>")
  add_dependencies(${name} gpumem_preload simcuda gpumem)
else()
  target_compile_definitions(${name} PRIVATE GPUMEM_CLI="gpumem")
endif()

# bench.smoke: every benchmark for about a second (bench/run --smoke), so none of them rots.
# It checks that each runs and prints its row; it judges no time.
add_test(NAME bench.smoke COMMAND ${PROJECT_SOURCE_DIR}/bench/run --smoke --build ${CMAKE_BINARY_DIR})
set_tests_properties(bench.smoke PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE)
