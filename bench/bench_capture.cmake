# bench_capture: the preload's cost per recorded event (plain / preload / preload + stacks), on
# simcuda, through a re-executed worker (bench_util.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/bench_util.cmake)
