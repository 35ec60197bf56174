// The preload library's settings check, for tools that start programs under it (`gpumem run`):
// the GPUMEM_* variables read through `env`, checked by the very parser libgpumem.so runs when it
// loads (libinterpose/src/config_parse.cpp), so a bad value is refused before the program starts,
// with the library's own message. Link gpumem_preload_settings.
#pragma once

namespace gpumem {

struct SettingsProblem {
  char variable[64] = {};  // the variable whose value is wrong ("GPUMEM_POOL", "GPUMEM_LIMIT_3")
  char message[512] = {};  // the library's one-line message: "GPUMEM_POOL='x' is not valid; ..."
};

// True when libgpumem.so would accept the settings `env` returns; else false with *problem
// filled. A percentage limit that is 0 bytes of the actual device is found only by the library,
// once it reads the device's capacity.
bool check_settings(const char* (*env)(const char* name), SettingsProblem* problem);

}  // namespace gpumem
