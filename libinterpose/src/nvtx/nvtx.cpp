// NVTX through its documented injection (NVTX_INJECTION64_PATH names libgpumem.so; `gpumem run`
// sets it): ranges become the trace's phase records, marks its instant markers, and the memory
// extension's heaps and regions its heap_* / region_* records (docs/interception.md, "NVTX").
//
// The callbacks run on the program's threads, maybe before the trace is open and maybe from a
// signal handler. Like gpumem_mark_*, an event arriving while this thread is already inside one
// of gpumem's hooks (or inside another NVTX callback) is dropped, a push together with its pop.
#define NVTX_NO_IMPL
#include <nvtx3/nvToolsExt.h>
#include <nvtx3/nvToolsExtMem.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "config.h"
#include "gpumem/trace/writer.h"
#include "reentry.h"
#include "session.h"
#include "stacks/stacks.h"

namespace {

using gpumem::trace::Op;

// A domain handle points at one of these (made by nvtxDomainCreate, never freed: NVTX gives no
// guarantee that no event names a destroyed domain later).
struct Domain {
  void* next_kept;  // see keep()
  char name[256];
};

// A registered string handle points at one of these (same lifetime rule).
struct Registered {
  void* next_kept;  // see keep()
  const Domain* domain;
  char text[1];  // UTF-8, NUL-terminated, allocated to fit
};

// Every domain and registered string stays on one list for the life of the process, so that
// leak checkers (LeakSanitizer, valgrind, heaptrack) see them reachable, not leaked, once the
// program has dropped its handles. Lock-free push: registration may race across threads.
std::atomic<void*> kept_head{nullptr};
template <typename Node>
void keep(Node* node) {
  void* head = kept_head.load(std::memory_order_relaxed);
  do node->next_kept = head;
  while (!kept_head.compare_exchange_weak(head, node, std::memory_order_release,
                                          std::memory_order_relaxed));
}

// Open push/pop ranges of this thread, innermost last. Initial-exec TLS: no allocation on a
// thread's first range.
constexpr int kMaxDepth = 128;
struct OpenRange {
  uint64_t id;  // kDropped when the push was dropped, so its pop is dropped too
  const Domain* domain;
};
thread_local OpenRange t_ranges[kMaxDepth] __attribute__((tls_model("initial-exec")));
thread_local int t_depth __attribute__((tls_model("initial-exec"))) = 0;
constexpr uint64_t kDropped = ~0ull;

std::atomic<uint32_t> g_next_range{1};
std::atomic<uintptr_t> g_next_heap{1};

// A range id carries its name's string id in the high half, so an end (on any thread) names what
// it closes without a table; the low half keeps ids of one name apart.
uint64_t make_range_id(uint64_t name_id) {
  return (name_id << 32) | g_next_range.fetch_add(1, std::memory_order_relaxed);
}
uint64_t name_of_range(uint64_t range_id) {
  return range_id >> 32;
}

// Encodes one UTF-32 wchar_t string as UTF-8 into out (cut to fit, always NUL-terminated).
size_t append_utf8(const wchar_t* w, char* out, size_t at, size_t cap) {
  for (; w != nullptr && *w != 0; ++w) {
    uint32_t c = static_cast<uint32_t>(*w);
    if (c >= 0x110000) c = '?';  // not a code point
    const size_t n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (at + n + 1 > cap) break;
    static constexpr unsigned char kLead[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
    for (size_t k = n - 1; k > 0; --k, c >>= 6) out[at + k] = static_cast<char>(0x80 | (c & 0x3F));
    out[at] = static_cast<char>(kLead[n] | c);
    at += n;
  }
  out[at] = '\0';
  return at;
}

size_t append_ascii(const char* s, char* out, size_t at, size_t cap) {
  for (; s != nullptr && *s != 0 && at + 1 < cap; ++s) out[at++] = *s;
  out[at] = '\0';
  return at;
}

// The text an event names, as "domain::name" for a named domain.
struct Name {
  char buf[1024];
  const char* text = "";
};

void compose(const Domain* domain, const char* ascii, const wchar_t* wide, Name& n) {
  if (domain == nullptr && wide == nullptr) {
    n.text = ascii != nullptr ? ascii : "";
    return;
  }
  size_t at = 0;
  n.buf[0] = '\0';
  if (domain != nullptr) {
    at = append_ascii(domain->name, n.buf, at, sizeof n.buf);
    at = append_ascii("::", n.buf, at, sizeof n.buf);
  }
  if (wide != nullptr)
    append_utf8(wide, n.buf, at, sizeof n.buf);
  else
    append_ascii(ascii, n.buf, at, sizeof n.buf);
  n.text = n.buf;
}

void compose(const Domain* domain, const nvtxEventAttributes_t* a, Name& n) {
  const char* ascii = "";
  const wchar_t* wide = nullptr;
  // Fields up to `message` exist in every version of the attributes (v1 and v2 share them).
  if (a != nullptr && a->size >= sizeof(nvtxEventAttributes_t)) {
    if (a->messageType == NVTX_MESSAGE_TYPE_ASCII && a->message.ascii != nullptr)
      ascii = a->message.ascii;
    else if (a->messageType == NVTX_MESSAGE_TYPE_UNICODE && a->message.unicode != nullptr)
      wide = a->message.unicode;
    else if (a->messageType == NVTX_MESSAGE_TYPE_REGISTERED && a->message.registered != nullptr)
      ascii = reinterpret_cast<const Registered*>(a->message.registered)->text;
  }
  compose(domain, ascii, wide, n);
}

gpumem::TraceWriter* writer() {
  return gpumem::session::writer();
}

uint64_t intern(gpumem::TraceWriter* w, const char* s) {
  return w != nullptr ? w->intern_string(s) : 0;
}

uint64_t domain_id(gpumem::TraceWriter* w, const Domain* d) {
  return d != nullptr ? intern(w, d->name) : 0;
}

void write(gpumem::TraceWriter* w, Op op, uint64_t aux, uint64_t address, uint64_t bytes,
           uint64_t domain, uint16_t flags, uint32_t site = 0) {
  if (w == nullptr) return;
  gpumem::trace::Record r{};
  r.op = static_cast<uint16_t>(op);
  r.api = static_cast<uint16_t>(gpumem::trace::Api::nvtx);
  r.device = -1;
  r.aux = aux;
  r.address = address;
  r.bytes = bytes;
  r.stream = domain;
  r.flags = flags;
  r.site = site;
  w->append(r);
}

// ---- ranges and marks ----

int push(const Domain* d, const Name& n) {
  // Ranges past kMaxDepth are not kept: they count as this domain's (one domain nests that deep).
  int level = t_depth > kMaxDepth ? t_depth - kMaxDepth : 0;
  for (int i = 0; i < t_depth && i < kMaxDepth; ++i) level += t_ranges[i].domain == d;
  uint64_t id = kDropped;
  if (gpumem::t_hook_depth == 0 && t_depth < kMaxDepth) {
    gpumem::HookScope scope;
    gpumem::TraceWriter* w = writer();
    id = make_range_id(intern(w, n.text));
    write(w, Op::mark_begin, name_of_range(id), id, 0, domain_id(w, d), 0);
  }
  // Claim the slot before filling it: a signal handler that pushes and pops between a store and
  // the increment would reuse the slot and leave its own range in it for this range's pop.
  const int slot = t_depth++;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (slot < kMaxDepth) t_ranges[slot] = {id, d};
  return level;
}

int pop(const Domain* d) {
  if (t_depth > kMaxDepth) {  // past the depth we keep: the range was never recorded
    --t_depth;
    return t_depth;
  }
  int at = t_depth - 1;
  while (at >= 0 && t_ranges[at].domain != d) --at;
  if (at < 0) return -1;  // NVTX's answer for a pop without a push
  int level = 0;
  for (int i = 0; i < at; ++i) level += t_ranges[i].domain == d;
  const uint64_t id = t_ranges[at].id;
  for (int i = at; i + 1 < t_depth; ++i) t_ranges[i] = t_ranges[i + 1];
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the slots settle before the release
  --t_depth;
  if (id != kDropped && gpumem::t_hook_depth == 0) {
    gpumem::HookScope scope;
    gpumem::TraceWriter* w = writer();
    write(w, Op::mark_end, name_of_range(id), id, 0, domain_id(w, d), 0);
  }
  return level;
}

nvtxRangeId_t start(const Domain* d, const Name& n) {
  if (gpumem::t_hook_depth != 0) return 0;
  gpumem::HookScope scope;
  gpumem::TraceWriter* w = writer();
  const uint64_t id = make_range_id(intern(w, n.text));
  write(w, Op::mark_begin, name_of_range(id), id, 0, domain_id(w, d),
        gpumem::trace::kFlagProcessRange);
  return id;
}

void end(const Domain* d, nvtxRangeId_t id) {
  if (id == 0 || gpumem::t_hook_depth != 0) return;
  gpumem::HookScope scope;
  gpumem::TraceWriter* w = writer();
  write(w, Op::mark_end, name_of_range(id), id, 0, domain_id(w, d),
        gpumem::trace::kFlagProcessRange);
}

void mark(const Domain* d, const Name& n) {
  if (gpumem::t_hook_depth != 0) return;
  gpumem::HookScope scope;
  gpumem::TraceWriter* w = writer();
  write(w, Op::mark, intern(w, n.text), 0, 0, domain_id(w, d), 0);
}

const Domain* as_domain(nvtxDomainHandle_t h) {
  return reinterpret_cast<const Domain*>(h);
}

void NVTX_API mark_ex(const nvtxEventAttributes_t* a) {
  Name n;
  compose(nullptr, a, n);
  mark(nullptr, n);
}
void NVTX_API mark_a(const char* s) {
  Name n;
  compose(nullptr, s, nullptr, n);
  mark(nullptr, n);
}
void NVTX_API mark_w(const wchar_t* s) {
  Name n;
  compose(nullptr, nullptr, s, n);
  mark(nullptr, n);
}
nvtxRangeId_t NVTX_API start_ex(const nvtxEventAttributes_t* a) {
  Name n;
  compose(nullptr, a, n);
  return start(nullptr, n);
}
nvtxRangeId_t NVTX_API start_a(const char* s) {
  Name n;
  compose(nullptr, s, nullptr, n);
  return start(nullptr, n);
}
nvtxRangeId_t NVTX_API start_w(const wchar_t* s) {
  Name n;
  compose(nullptr, nullptr, s, n);
  return start(nullptr, n);
}
void NVTX_API end_default(nvtxRangeId_t id) {
  end(nullptr, id);
}
int NVTX_API push_ex(const nvtxEventAttributes_t* a) {
  Name n;
  compose(nullptr, a, n);
  return push(nullptr, n);
}
int NVTX_API push_a(const char* s) {
  Name n;
  compose(nullptr, s, nullptr, n);
  return push(nullptr, n);
}
int NVTX_API push_w(const wchar_t* s) {
  Name n;
  compose(nullptr, nullptr, s, n);
  return push(nullptr, n);
}
int NVTX_API pop_default() {
  return pop(nullptr);
}

void NVTX_API domain_mark(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) {
  Name n;
  compose(as_domain(d), a, n);
  mark(as_domain(d), n);
}
nvtxRangeId_t NVTX_API domain_start(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) {
  Name n;
  compose(as_domain(d), a, n);
  return start(as_domain(d), n);
}
void NVTX_API domain_end(nvtxDomainHandle_t d, nvtxRangeId_t id) {
  end(as_domain(d), id);
}
int NVTX_API domain_push(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) {
  Name n;
  compose(as_domain(d), a, n);
  return push(as_domain(d), n);
}
int NVTX_API domain_pop(nvtxDomainHandle_t d) {
  return pop(as_domain(d));
}

// Registration and domain creation allocate: they are rare, and not made from signal handlers.
nvtxStringHandle_t register_string(nvtxDomainHandle_t d, const char* ascii, const wchar_t* wide) {
  Name n;
  compose(nullptr, ascii, wide, n);
  const size_t len = std::strlen(n.text);
  auto* r = static_cast<Registered*>(std::malloc(sizeof(Registered) + len));
  if (r == nullptr) return nullptr;
  r->domain = as_domain(d);
  std::memcpy(r->text, n.text, len + 1);
  keep(r);
  return reinterpret_cast<nvtxStringHandle_t>(r);
}
nvtxStringHandle_t NVTX_API register_a(nvtxDomainHandle_t d, const char* s) {
  return register_string(d, s, nullptr);
}
nvtxStringHandle_t NVTX_API register_w(nvtxDomainHandle_t d, const wchar_t* s) {
  return register_string(d, nullptr, s);
}
nvtxDomainHandle_t create_domain(const char* ascii, const wchar_t* wide) {
  auto* d = static_cast<Domain*>(std::calloc(1, sizeof(Domain)));
  if (d == nullptr) return nullptr;
  if (wide != nullptr)
    append_utf8(wide, d->name, 0, sizeof d->name);
  else
    append_ascii(ascii, d->name, 0, sizeof d->name);
  keep(d);
  return reinterpret_cast<nvtxDomainHandle_t>(d);
}
nvtxDomainHandle_t NVTX_API domain_create_a(const char* s) {
  return create_domain(s, nullptr);
}
nvtxDomainHandle_t NVTX_API domain_create_w(const wchar_t* s) {
  return create_domain(nullptr, s);
}
void NVTX_API domain_destroy(nvtxDomainHandle_t) {}  // kept: later events may still name it
void NVTX_API initialize(const void*) {}

// ---- the memory extension ----

// Heap and region handles: a heap is a number we hand out; a region's handle is its address.
uint64_t heap_of(nvtxMemHeapHandle_t h) {
  return reinterpret_cast<uintptr_t>(h);
}

void write_mem(Op op, uint64_t heap, uint64_t address, uint64_t bytes, const Domain* d) {
  if (gpumem::t_hook_depth != 0) return;
  gpumem::HookScope scope;
  gpumem::TraceWriter* w = writer();
  // A region is an allocation of the program's own allocator: with GPUMEM_STACKS its call stack
  // is its site, as a cudaMalloc's is (the report counts it as a pooled allocation there).
  uint32_t site = 0;
  if (op == Op::region_register && w != nullptr && gpumem::config().stacks)
    site = gpumem::stacks::capture(*w, gpumem::config().stack_mode);
  write(w, op, heap, address, bytes, domain_id(w, d), 0, site);
}

nvtxMemHeapHandle_t NVTX_API heap_register(nvtxDomainHandle_t d, const nvtxMemHeapDesc_t* desc) {
  const uintptr_t heap = g_next_heap.fetch_add(1, std::memory_order_relaxed);
  if (desc != nullptr && desc->type == NVTX_MEM_TYPE_VIRTUAL_ADDRESS &&
      desc->typeSpecificDesc != nullptr &&
      desc->typeSpecificDescSize >= sizeof(nvtxMemVirtualRangeDesc_t)) {
    const auto* range = static_cast<const nvtxMemVirtualRangeDesc_t*>(desc->typeSpecificDesc);
    write_mem(Op::heap_register, heap, reinterpret_cast<uintptr_t>(range->ptr), range->size,
              as_domain(d));
  }
  return reinterpret_cast<nvtxMemHeapHandle_t>(heap);
}
void NVTX_API heap_unregister(nvtxDomainHandle_t d, nvtxMemHeapHandle_t h) {
  write_mem(Op::heap_unregister, heap_of(h), 0, 0, as_domain(d));
}
void NVTX_API heap_reset(nvtxDomainHandle_t d, nvtxMemHeapHandle_t h) {
  write_mem(Op::heap_reset, heap_of(h), 0, 0, as_domain(d));
}

// Batches: element sizes come from the caller, so a newer, larger element is read by its prefix.
void NVTX_API regions_register(nvtxDomainHandle_t d, const nvtxMemRegionsRegisterBatch_t* b) {
  if (b == nullptr || b->regionType != NVTX_MEM_TYPE_VIRTUAL_ADDRESS ||
      b->regionDescElements == nullptr ||
      b->regionDescElementSize < sizeof(nvtxMemVirtualRangeDesc_t))
    return;
  const auto* bytes = static_cast<const unsigned char*>(b->regionDescElements);
  for (size_t i = 0; i < b->regionCount; ++i) {
    const auto* r =
        reinterpret_cast<const nvtxMemVirtualRangeDesc_t*>(bytes + i * b->regionDescElementSize);
    write_mem(Op::region_register, heap_of(b->heap), reinterpret_cast<uintptr_t>(r->ptr), r->size,
              as_domain(d));
    if (b->regionHandleElementsOut != nullptr)
      b->regionHandleElementsOut[i] =
          reinterpret_cast<nvtxMemRegionHandle_t>(const_cast<void*>(r->ptr));
  }
}
void NVTX_API regions_resize(nvtxDomainHandle_t d, const nvtxMemRegionsResizeBatch_t* b) {
  if (b == nullptr || b->regionType != NVTX_MEM_TYPE_VIRTUAL_ADDRESS ||
      b->regionDescElements == nullptr ||
      b->regionDescElementSize < sizeof(nvtxMemVirtualRangeDesc_t))
    return;
  const auto* bytes = static_cast<const unsigned char*>(b->regionDescElements);
  for (size_t i = 0; i < b->regionDescCount; ++i) {
    const auto* r =
        reinterpret_cast<const nvtxMemVirtualRangeDesc_t*>(bytes + i * b->regionDescElementSize);
    write_mem(Op::region_resize, 0, reinterpret_cast<uintptr_t>(r->ptr), r->size, as_domain(d));
  }
}
void NVTX_API regions_unregister(nvtxDomainHandle_t d, const nvtxMemRegionsUnregisterBatch_t* b) {
  if (b == nullptr || b->refElements == nullptr || b->refElementSize < sizeof(nvtxMemRegionRef_t))
    return;
  if (b->refType != NVTX_MEM_REGION_REF_TYPE_POINTER &&
      b->refType != NVTX_MEM_REGION_REF_TYPE_HANDLE)
    return;
  const auto* bytes = reinterpret_cast<const unsigned char*>(b->refElements);
  for (size_t i = 0; i < b->refCount; ++i) {
    const auto* ref = reinterpret_cast<const nvtxMemRegionRef_t*>(bytes + i * b->refElementSize);
    // Both kinds name the address: our region handles are the region's address.
    write_mem(Op::region_unregister, 0, reinterpret_cast<uintptr_t>(ref->pointer), 0, as_domain(d));
  }
}

template <typename F>
void put(NvtxFunctionTable table, unsigned int size, unsigned int id, F fn) {
  if (id < size && table[id] != nullptr) *table[id] = reinterpret_cast<NvtxFunctionPointer>(fn);
}

}  // namespace

// NVTX's entry point: fills the core and domain callback tables. Returns 1 (attached).
extern "C" __attribute__((visibility("default"))) int InitializeInjectionNvtx2(
    NvtxGetExportTableFunc_t get_export_table) {
  if (get_export_table == nullptr) return 0;
  const auto* callbacks =
      static_cast<const NvtxExportTableCallbacks*>(get_export_table(NVTX_ETID_CALLBACKS));
  if (callbacks == nullptr || callbacks->struct_size < sizeof(NvtxExportTableCallbacks) ||
      callbacks->GetModuleFunctionTable == nullptr)
    return 0;
  NvtxFunctionTable t = nullptr;
  unsigned int n = 0;
  if (callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &t, &n) != 0 && t != nullptr) {
    put(t, n, NVTX_CBID_CORE_MarkEx, mark_ex);
    put(t, n, NVTX_CBID_CORE_MarkA, mark_a);
    put(t, n, NVTX_CBID_CORE_MarkW, mark_w);
    put(t, n, NVTX_CBID_CORE_RangeStartEx, start_ex);
    put(t, n, NVTX_CBID_CORE_RangeStartA, start_a);
    put(t, n, NVTX_CBID_CORE_RangeStartW, start_w);
    put(t, n, NVTX_CBID_CORE_RangeEnd, end_default);
    put(t, n, NVTX_CBID_CORE_RangePushEx, push_ex);
    put(t, n, NVTX_CBID_CORE_RangePushA, push_a);
    put(t, n, NVTX_CBID_CORE_RangePushW, push_w);
    put(t, n, NVTX_CBID_CORE_RangePop, pop_default);
  }
  t = nullptr, n = 0;
  if (callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE2, &t, &n) != 0 && t != nullptr) {
    put(t, n, NVTX_CBID_CORE2_DomainMarkEx, domain_mark);
    put(t, n, NVTX_CBID_CORE2_DomainRangeStartEx, domain_start);
    put(t, n, NVTX_CBID_CORE2_DomainRangeEnd, domain_end);
    put(t, n, NVTX_CBID_CORE2_DomainRangePushEx, domain_push);
    put(t, n, NVTX_CBID_CORE2_DomainRangePop, domain_pop);
    put(t, n, NVTX_CBID_CORE2_DomainRegisterStringA, register_a);
    put(t, n, NVTX_CBID_CORE2_DomainRegisterStringW, register_w);
    put(t, n, NVTX_CBID_CORE2_DomainCreateA, domain_create_a);
    put(t, n, NVTX_CBID_CORE2_DomainCreateW, domain_create_w);
    put(t, n, NVTX_CBID_CORE2_DomainDestroy, domain_destroy);
    put(t, n, NVTX_CBID_CORE2_Initialize, initialize);
  }
  return 1;
}

// NVTX's entry point for extensions: the memory extension's slots (heaps and regions); any other
// extension is left to its no-op default.
extern "C" __attribute__((visibility("default"))) int InitializeInjectionNvtxExtension(
    nvtxExtModuleInfo_t* info) {
  if (info == nullptr || info->segments == nullptr || info->segmentsCount == 0) return 0;
  if (info->moduleId != NVTX_EXT_MODULEID_MEM || info->compatId != NVTX_EXT_COMPATID_MEM) return 1;
  nvtxExtModuleSegment_t& s = info->segments[0];
  auto set = [&](size_t id, auto fn) {
    if (s.functionSlots != nullptr && id < s.slotCount)
      s.functionSlots[id] = reinterpret_cast<intptr_t>(fn);
  };
  set(NVTX3EXT_CBID_nvtxMemHeapRegister, heap_register);
  set(NVTX3EXT_CBID_nvtxMemHeapUnregister, heap_unregister);
  set(NVTX3EXT_CBID_nvtxMemHeapReset, heap_reset);
  set(NVTX3EXT_CBID_nvtxMemRegionsRegister, regions_register);
  set(NVTX3EXT_CBID_nvtxMemRegionsResize, regions_resize);
  set(NVTX3EXT_CBID_nvtxMemRegionsUnregister, regions_unregister);
  return 1;
}
