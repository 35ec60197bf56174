# bench_policy: the alloc+free pair through each policy's resources (resources/).
if(TARGET gpumem_resources)
  target_link_libraries(bench_policy PRIVATE gpumem_resources_testing)
else()
  # Without the resources library there is nothing to measure: build an empty program.
  target_compile_definitions(bench_policy PRIVATE GPUMEM_NO_RESOURCES=1)
endif()
