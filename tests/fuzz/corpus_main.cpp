// Without libFuzzer (the normal gcc build): runs a fuzz target over every file of its seed
// corpus, so ctest checks the seeds on every build and a crash found by fuzzing, once added to
// the corpus, stays fixed. Usage: <target>_corpus DIR...
#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    DIR* dir = opendir(argv[i]);
    if (dir == nullptr) return std::fprintf(stderr, "cannot open corpus folder %s\n", argv[i]), 1;
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(std::string(argv[i]) + "/" + e->d_name, std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++files;
    }
    closedir(dir);
  }
  std::printf("%d corpus inputs ran without a crash\n", files);
  return files > 0 ? 0 : 1;
}
