# bench_train_step: the trainer under each pool of the preload on simcuda (bench_util.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/bench_util.cmake)
target_compile_definitions(${name} PRIVATE GPUMEM_TRAIN="$<TARGET_FILE:gpumem-train>")
add_dependencies(${name} gpumem-train)
