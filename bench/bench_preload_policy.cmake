# bench_preload_policy: the alloc+free pair through each policy of the preload vs raw, on
# simcuda, through a re-executed worker (bench_util.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/bench_util.cmake)
