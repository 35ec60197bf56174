# bench_policy: the alloc+free pair through each policy's resources (resources/), on
# SimulatedUpstream.
target_link_libraries(bench_policy PRIVATE gpumem_resources_testing)
