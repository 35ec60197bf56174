// "Counted once": a thread-local depth of hook calls. The outermost hook on a thread records;
// a hook entered while another is active on the same thread (cudaMalloc -> the real cudaMalloc
// -> our cuMemAlloc_v2 wrapper) passes straight through to the real function.
// initial-exec TLS: no __tls_get_addr, hence no allocation on a thread's first hook.
#pragma once

namespace gpumem {

extern thread_local int t_hook_depth __attribute__((tls_model("initial-exec")));

class HookScope {
 public:
  HookScope() : outermost_(t_hook_depth++ == 0) {}
  ~HookScope() { --t_hook_depth; }
  HookScope(const HookScope&) = delete;
  HookScope& operator=(const HookScope&) = delete;
  bool outermost() const { return outermost_; }

 private:
  bool outermost_;
};

}  // namespace gpumem
