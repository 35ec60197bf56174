# bench_analyzer: the analysis model (and the trace reader when it is built).
target_link_libraries(${name} PRIVATE gpumem_analyzer)
# BM_SegmentSpace measures the pool segments' free extents alone (analyzer/src/segment_space.h).
target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/analyzer/src)
