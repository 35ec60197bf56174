// The programs the OOM tests run, defined once for the files that share a unity translation unit.
#pragma once

#include <string>

inline const std::string kCli = GPUMEM_CLI;
inline const std::string kOom = GPUMEM_OOM;
