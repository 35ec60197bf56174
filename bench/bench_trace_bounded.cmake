# bench_trace_bounded: a bounded trace (GPUMEM_TRACE_MAX) written, then analysed.
target_link_libraries(${name} PRIVATE gpumem_trace_writer gpumem_analyzer)
