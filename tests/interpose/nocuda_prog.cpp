// A program that never touches CUDA: under the preload it must leave no trace file and print
// nothing. It does call dlsym (on libc), which goes through gpumem's override.
#include <dlfcn.h>

#include <cstdio>

int main() {
  void* f = dlsym(RTLD_DEFAULT, "printf");
  std::printf("%s\n", f != nullptr ? "ok" : "no printf");
  return f != nullptr ? 0 : 1;
}
