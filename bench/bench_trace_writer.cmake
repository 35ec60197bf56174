# bench_trace_writer: the trace writer's cost per recorded event.
target_link_libraries(${name} PRIVATE gpumem_trace_writer)
