# bench_trace_size: bytes per event of the compact trace format (and the append cost beside it).
target_link_libraries(${name} PRIVATE gpumem_trace_writer gpumem_trace)
