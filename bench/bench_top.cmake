# bench_top: the writers use the real trace writer; top is the gpumem program itself.
target_link_libraries(${name} PRIVATE gpumem_trace_writer util)
target_compile_definitions(${name} PRIVATE GPUMEM_CLI="$<TARGET_FILE:gpumem>")
add_dependencies(${name} gpumem)
