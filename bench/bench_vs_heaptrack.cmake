# bench_vs_heaptrack: gpumem's capture, pool-through-preload and analyzer against heaptrack on the
# same number of calls. Re-executes itself as the measured worker (bench_util.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/bench_util.cmake)
target_link_libraries(${name} PRIVATE gpumem_trace_writer)
target_compile_definitions(${name} PRIVATE GPUMEM_CLI="$<TARGET_FILE:gpumem>")
add_dependencies(${name} gpumem)
