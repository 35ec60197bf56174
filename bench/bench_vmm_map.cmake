# bench_vmm_map: a 2 MiB granule's map/unmap cycle on simcuda against a cuMemAlloc/cuMemFree pair,
# through a re-executed worker (bench_util.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/bench_util.cmake)
