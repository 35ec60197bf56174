# bench_analyzer: the analysis model (and the trace reader when it is built).
target_link_libraries(${name} PRIVATE gpumem_analyzer)
