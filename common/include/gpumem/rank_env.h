// Where a process's rank comes from, in order: launchers' global ranks first, LOCAL_RANK last
// (it repeats on every node, so it is only a fallback). Used by the preload's %r template and by
// `gpumem run` to predict the trace name; one list so the two never disagree.
#pragma once

namespace gpumem {

inline constexpr const char* kRankVariables[] = {"RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID",
                                                 "PMI_RANK", "LOCAL_RANK"};

}  // namespace gpumem
