// A shared library with a static function that is in .symtab but not in .dynsym: dladdr cannot
// name it; the trace writer's ELF lookup must. The exported function hands out its address.
namespace {

__attribute__((noinline)) int library_hidden_function(int x) {
  volatile int y = x * 3;  // volatile: keeps a real body with a nonzero size
  return y + 1;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) void* gpumem_test_library_hidden_function() {
  return reinterpret_cast<void*>(&library_hidden_function);
}
