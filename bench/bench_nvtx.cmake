# bench_nvtx: an NVTX push/pop loop without injection, under libgpumem.so's NVTX injection, and the
# same loop through gpumem's own marks (one trace record each): bench_util.cmake's worker scheme.
include(${CMAKE_CURRENT_LIST_DIR}/bench_util.cmake)
target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/libinterpose/include)
