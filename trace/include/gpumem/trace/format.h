// The gpumem trace file format, version 1. Shared by the writer (gpumem/trace/writer.h) and every
// reader (trace/, analyzer/, cli dump). Documented for people in docs/trace-format.md; this header
// is the definition, and the two must agree.
//
// File layout (all integers little-endian, x86-64 natural alignment):
//
//   offset 0            Header (kHeaderSize bytes, zero-padded)
//   offset kHeaderSize  Record[0], Record[1], ...   each exactly kRecordSize (64) bytes
//
// Writers reserve records with one atomic fetch_add on a shared cursor and fill them in place
// through a MAP_SHARED mapping of the file, so the page cache holds every record whose call has
// returned even if the process is killed with SIGKILL. A record becomes valid when its `commit`
// word, written last with release ordering, equals kCommitted. A reader therefore sees:
//   commit == kCommitted      a complete record
//   commit == kContinuation   a payload slot of the blob record (string/stack) that precedes it
//   commit == kAbandoned      a slot still being written when the process exited cleanly (the
//                             call had not returned): skipped, counted apart, not damage; a
//                             blob's kContinuation slots right after it belong to it
//   commit == 0, slot all 0   unused space (end of trace when nothing valid follows)
//   anything else             a record cut by a kill: skipped and counted as torn
//
// Blob records (Op::string, Op::stack) occupy 1 + n slots: a head record with
//   address = n (number of continuation slots), bytes = payload length, aux = id
// followed by n slots of kBlobBytesPerSlot payload bytes each (commit = kContinuation). The writer
// commits the continuation slots first and the head last, so a committed head always has its
// payload.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpumem::trace {

inline constexpr char kMagic[8] = {'G', 'P', 'U', 'M', 'E', 'M', 'T', 'R'};
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kHeaderSize = 65536;
inline constexpr uint32_t kRecordSize = 64;
inline constexpr uint32_t kCommitted = 0x474D5243u;     // "CRMG"
inline constexpr uint32_t kContinuation = 0x474D4E43u;  // "CNMG"
inline constexpr uint32_t kAbandoned = 0x474D4241u;     // "ABMG": in flight at a clean close
inline constexpr int kMaxDevices = 64;
inline constexpr size_t kBlobBytesPerSlot = 60;

// What happened. Values are stable: append, never renumber.
enum class Op : uint16_t {
  invalid = 0,
  alloc = 1,            // address, bytes (requested), flags: MemKind
  free = 2,             // address, bytes (of the allocation when known, else 0)
  alloc_failed = 3,     // bytes (requested), aux = bytes in use on the device at the time, result
  segment_reserve = 4,  // a pool took address..address+bytes from the device; aux = pool id
  segment_release = 5,  // a pool gave a segment back; aux = pool id
  mark_begin = 6,       // aux = string id of the phase name
  mark_end = 7,         // aux = string id of the phase it closes (0 when unknown)
  mark = 8,             // an instant marker; aux = string id
  meminfo = 9,          // a capacity query: bytes = total reported, aux = free reported
  anomaly = 10,         // aux = AnomalyKind; address/bytes as for the call that caused it
  string = 11,          // blob: aux = string id, payload = UTF-8 bytes (not NUL-terminated)
  stack = 12,           // blob: aux = stack id, payload = uint64 return addresses, innermost first
  symbol = 13,          // address = code address, aux = string id of "function (module+0xoff)"
  map = 14,             // VMM cuMemMap: address, bytes, aux = physical handle
  unmap = 15,           // VMM cuMemUnmap: address, bytes
  device_info = 16,     // device, bytes = capacity, aux = limit (0 = none); also in the header
  trim = 17,            // cuMemPoolTrimTo / empty-cache: bytes = target or bytes released
  // The real free after an Op::free record failed: the allocation stays live. address, bytes as
  // in that free, result = the API's error, aux = t_ns of the free record it cancels.
  free_failed = 18,
  // NVTX memory extension (api nvtx): an allocator describing its own sub-allocations. aux = heap
  // id (0 = the process-wide heap), stream = string id of the NVTX domain (0 = default domain).
  heap_register = 19,      // address..address+bytes is a heap inside memory allocated earlier
  heap_unregister = 20,    // the heap aux and every region in it are gone
  heap_reset = 21,         // every region of heap aux is gone; the heap stays
  region_register = 22,    // address, bytes: a sub-allocation in heap aux
  region_resize = 23,      // address: the region now has `bytes` bytes
  region_unregister = 24,  // address: the region is gone
  // The device's state at a failed allocation that ran out of memory (the device refused, or
  // gpumem's cap or pool did), written by the failing thread right after its alloc_failed record,
  // with the same site: bytes = requested, address = allocated (what the program held on the
  // device), stream = reserved (taken from the device: pool segments and direct allocations;
  // == allocated without a pool), aux = the largest free block inside the device's pool segments
  // (0 without a pool), result = the API's code; flags as the alloc_failed record's, plus
  // kFlagOomByGpumem. The device's capacity and cap are its DeviceInfo (header, Op::device_info):
  // both are fixed for the life of the process. Readers that predate it skip it (unknown op).
  oom = 25,
};

// Which API made the record. Values are stable: append, never renumber.
enum class Api : uint16_t {
  unknown = 0,
  cudaMalloc = 1,
  cudaFree = 2,
  cudaMallocAsync = 3,
  cudaFreeAsync = 4,
  cudaMallocFromPoolAsync = 5,
  cudaMallocManaged = 6,
  cudaMallocPitch = 7,
  cudaMalloc3D = 8,
  cudaMallocHost = 9,
  cudaHostAlloc = 10,
  cudaFreeHost = 11,
  cudaMemGetInfo = 12,
  cuMemAlloc = 13,  // cuMemAlloc_v2
  cuMemFree = 14,   // cuMemFree_v2
  cuMemAllocPitch = 15,
  cuMemAllocManaged = 16,
  cuMemAllocAsync = 17,
  cuMemFreeAsync = 18,
  cuMemAllocFromPoolAsync = 19,
  cuMemCreate = 20,
  cuMemRelease = 21,
  cuMemMap = 22,
  cuMemUnmap = 23,
  cuMemGetInfo = 24,
  cuDeviceTotalMem = 25,
  cuMemPoolTrimTo = 26,
  gpumem = 27,  // the public C API (marks, empty_cache)
  pool = 28,    // a gpumem pool resource (segment events)
  torch = 29,   // gpumem_torch_malloc / gpumem_torch_free (PyTorch pluggable allocator)
  cupti = 30,   // recorded by the CUPTI capture mode
  cudaMemPoolTrimTo = 31,
  nvtx = 32,  // NVTX ranges, marks and memory regions (libinterpose/src/nvtx, docs/interception.md)
  cuMemAllocHost = 33,  // cuMemAllocHost_v2: the driver's pinned host memory
  cuMemHostAlloc = 34,
  cuMemFreeHost = 35,
  cudaMallocArray = 36,
  cudaMalloc3DArray = 37,
  cudaMallocMipmappedArray = 38,
  cudaFreeArray = 39,
  cudaFreeMipmappedArray = 40,
  cuArrayCreate = 41,  // CUDA arrays (MemKind::array): bytes = the driver's size of the array
  cuArray3DCreate = 42,
  cuMipmappedArrayCreate = 43,
  cuArrayDestroy = 44,
  cuMipmappedArrayDestroy = 45,
  cudaHostRegister = 46,  // host registration: MemKind::pinned_host, never charged to a device
  cudaHostUnregister = 47,
  cuMemHostRegister = 48,
  cuMemHostUnregister = 49,
  cudaIpcOpenMemHandle = 50,  // memory another process owns (MemKind::imported)
  cudaIpcCloseMemHandle = 51,
  cuIpcOpenMemHandle = 52,
  cuIpcCloseMemHandle = 53,
  cuMemImportFromShareableHandle = 54,
  nvml = 55,  // NVML memory queries (nvmlDeviceGetMemoryInfo, _v2)
  count
};

// Record::flags bits 0..3: what kind of memory.
enum class MemKind : uint16_t {
  device = 0,
  managed = 1,
  pinned_host = 2,  // cudaMallocHost/cudaHostAlloc, cuMemAllocHost_v2/cuMemHostAlloc: host memory
  physical = 3,     // cuMemCreate handle (VMM); address holds the handle
  array = 4,        // a CUDA array or mipmapped array: address holds the handle, bytes the
                    // driver's size for it (device memory, charged to the cap)
  imported = 5,     // memory another process owns, mapped here by an IPC or shareable handle:
                    // shown, never charged to this process's cap nor counted twice
};
inline constexpr uint16_t kFlagKindMask = 0x000F;
// Record::flags bits 4..5: how the caller reached the hooked function.
enum class Lookup : uint16_t { direct = 0, dlsym = 1, resolver = 2 };
inline constexpr uint16_t kFlagLookupShift = 4;
inline constexpr uint16_t kFlagLookupMask = 0x0030;
inline constexpr uint16_t kFlagAsync = 0x0040;  // stream-ordered call
inline constexpr uint16_t kFlagPooled = 0x0080;  // served by a gpumem pool, not the device directly
// NVTX phases (api nvtx, Op::mark_begin/mark_end): the range was opened by nvtxRangeStart and
// closed by nvtxRangeEnd, possibly on another thread; without it, a push/pop range of `tid`.
// Their `address` is the range id (the same on begin and end), `stream` the domain's string id.
inline constexpr uint16_t kFlagProcessRange = 0x0100;
// Op::oom: gpumem's cap or pool refused the request (the device was not asked, or was asked for
// a pool segment and the cap refused it); without it the device itself ran out of memory.
inline constexpr uint16_t kFlagOomByGpumem = 0x0200;

// Stack payloads hold return addresses, innermost first; an entry with this bit set is a Python
// frame instead (GPUMEM_STACKS=python|mixed): its low 32 bits are a frame id, named by an
// Op::symbol record ("function (file:line)") like any return address. Id 0 is the marker
// "[no Python frame]": the allocating thread ran no Python code. User-space code addresses never
// have bit 63 set.
inline constexpr uint64_t kPythonFrameTag = 1ull << 63;
inline constexpr bool is_python_frame(uint64_t pc) { return (pc & kPythonFrameTag) != 0; }

enum class AnomalyKind : uint64_t {
  none = 0,
  free_unknown = 1,   // free of a pointer gpumem never saw allocated (forwarded to CUDA)
  double_free = 2,    // free of a pointer already freed
  null_out_param = 3, // an allocation call with a NULL out-parameter
};

// One event. Exactly 64 bytes; `commit` is the last word and is written last.
struct Record {
  uint64_t t_ns;     // CLOCK_MONOTONIC, nanoseconds (compare with Header::clock_base_ns)
  uint64_t address;  // device pointer, VMM handle, or blob slot count; see Op
  uint64_t bytes;    // bytes requested (alloc), freed, reserved...; see Op
  uint64_t stream;   // cudaStream_t/CUstream value, 0 = legacy default stream
  uint64_t aux;      // op-specific, see Op
  uint32_t tid;      // kernel thread id (gettid)
  uint32_t site;     // call-site stack id (Op::stack aux), 0 = none recorded
  int32_t result;    // the API's return code (cudaError_t or CUresult), 0 = success
  uint16_t op;       // Op
  uint16_t api;      // Api
  int16_t device;    // device ordinal, -1 = host / unknown
  uint16_t flags;    // MemKind | Lookup << 4 | kFlagAsync | kFlagPooled
  uint32_t commit;   // kCommitted, kContinuation, or anything else = torn
};
static_assert(sizeof(Record) == kRecordSize, "records are 64 bytes");
static_assert(offsetof(Record, commit) == 60, "commit is the last word");

struct DeviceInfo {
  uint64_t capacity_bytes;  // physical capacity reported by the device
  uint64_t limit_bytes;     // gpumem limit in force, 0 = none
  char name[96];            // NUL-terminated
  uint32_t present;         // 1 once filled in (written last)
  uint32_t reserved;
};
static_assert(sizeof(DeviceInfo) == 120);

// Header flags.
inline constexpr uint32_t kHeaderStacks = 1u << 0;     // GPUMEM_STACKS=1 was on
inline constexpr uint32_t kHeaderSimulated = 1u << 1;  // ran on simcuda
inline constexpr uint32_t kHeaderClosed = 1u << 2;     // the writer closed the file cleanly

struct Header {
  char magic[8];           // kMagic
  uint32_t version;        // kVersion
  uint32_t header_size;    // kHeaderSize: records start at this offset
  uint32_t record_size;    // kRecordSize
  uint32_t pid;
  int32_t rank;            // from RANK/LOCAL_RANK/OMPI_COMM_WORLD_RANK/SLURM_PROCID/PMI_RANK, -1 = none
  uint32_t flags;          // kHeader*
  uint64_t clock_base_ns;  // CLOCK_MONOTONIC when the trace was opened
  uint64_t start_unix_ns;  // CLOCK_REALTIME when the trace was opened
  uint64_t end_offset;     // set at clean close: file offset one past the last record; 0 = not closed
  uint32_t device_count;   // devices[] entries in use (max ordinal seen + 1)
  uint32_t parent_pid;     // pid of the process this one was forked from, 0 = none
  char host[64];
  char pool[16];           // "none", "growth", "fixed"
  // Records the writer could not keep because the file could not grow (disk full, file-size
  // limit); counted as they are lost, so a killed process tells it too. 0 in older traces.
  uint64_t records_dropped;
  char reserved0[40];
  DeviceInfo devices[kMaxDevices];
  char command[8192];      // argv joined by single spaces, NUL-terminated, truncated to fit
  char config[4096];       // the GPUMEM_* settings in force, "KEY=VALUE" lines, NUL-terminated
};
static_assert(sizeof(Header) <= kHeaderSize, "the header fits its reserved space");
static_assert(offsetof(Header, records_dropped) == 144, "version 1 layout: was reserved (zero)");

inline const char* op_name(Op op) {
  switch (op) {
    case Op::alloc: return "alloc";
    case Op::free: return "free";
    case Op::alloc_failed: return "alloc_failed";
    case Op::segment_reserve: return "segment_reserve";
    case Op::segment_release: return "segment_release";
    case Op::mark_begin: return "mark_begin";
    case Op::mark_end: return "mark_end";
    case Op::mark: return "mark";
    case Op::meminfo: return "meminfo";
    case Op::anomaly: return "anomaly";
    case Op::string: return "string";
    case Op::stack: return "stack";
    case Op::symbol: return "symbol";
    case Op::map: return "map";
    case Op::unmap: return "unmap";
    case Op::device_info: return "device_info";
    case Op::trim: return "trim";
    case Op::free_failed: return "free_failed";
    case Op::heap_register: return "heap_register";
    case Op::heap_unregister: return "heap_unregister";
    case Op::heap_reset: return "heap_reset";
    case Op::region_register: return "region_register";
    case Op::region_resize: return "region_resize";
    case Op::region_unregister: return "region_unregister";
    case Op::oom: return "oom";
    case Op::invalid: break;
  }
  return "invalid";
}

inline const char* api_name(Api api) {
  switch (api) {
    case Api::cudaMalloc: return "cudaMalloc";
    case Api::cudaFree: return "cudaFree";
    case Api::cudaMallocAsync: return "cudaMallocAsync";
    case Api::cudaFreeAsync: return "cudaFreeAsync";
    case Api::cudaMallocFromPoolAsync: return "cudaMallocFromPoolAsync";
    case Api::cudaMallocManaged: return "cudaMallocManaged";
    case Api::cudaMallocPitch: return "cudaMallocPitch";
    case Api::cudaMalloc3D: return "cudaMalloc3D";
    case Api::cudaMallocHost: return "cudaMallocHost";
    case Api::cudaHostAlloc: return "cudaHostAlloc";
    case Api::cudaFreeHost: return "cudaFreeHost";
    case Api::cudaMemGetInfo: return "cudaMemGetInfo";
    case Api::cuMemAlloc: return "cuMemAlloc_v2";
    case Api::cuMemFree: return "cuMemFree_v2";
    case Api::cuMemAllocPitch: return "cuMemAllocPitch_v2";
    case Api::cuMemAllocManaged: return "cuMemAllocManaged";
    case Api::cuMemAllocAsync: return "cuMemAllocAsync";
    case Api::cuMemFreeAsync: return "cuMemFreeAsync";
    case Api::cuMemAllocFromPoolAsync: return "cuMemAllocFromPoolAsync";
    case Api::cuMemCreate: return "cuMemCreate";
    case Api::cuMemRelease: return "cuMemRelease";
    case Api::cuMemMap: return "cuMemMap";
    case Api::cuMemUnmap: return "cuMemUnmap";
    case Api::cuMemGetInfo: return "cuMemGetInfo_v2";
    case Api::cuDeviceTotalMem: return "cuDeviceTotalMem_v2";
    case Api::cuMemPoolTrimTo: return "cuMemPoolTrimTo";
    case Api::gpumem: return "gpumem";
    case Api::pool: return "pool";
    case Api::torch: return "torch";
    case Api::cupti: return "cupti";
    case Api::cudaMemPoolTrimTo: return "cudaMemPoolTrimTo";
    case Api::nvtx: return "nvtx";
    case Api::cuMemAllocHost: return "cuMemAllocHost_v2";
    case Api::cuMemHostAlloc: return "cuMemHostAlloc";
    case Api::cuMemFreeHost: return "cuMemFreeHost";
    case Api::cudaMallocArray: return "cudaMallocArray";
    case Api::cudaMalloc3DArray: return "cudaMalloc3DArray";
    case Api::cudaMallocMipmappedArray: return "cudaMallocMipmappedArray";
    case Api::cudaFreeArray: return "cudaFreeArray";
    case Api::cudaFreeMipmappedArray: return "cudaFreeMipmappedArray";
    case Api::cuArrayCreate: return "cuArrayCreate_v2";
    case Api::cuArray3DCreate: return "cuArray3DCreate_v2";
    case Api::cuMipmappedArrayCreate: return "cuMipmappedArrayCreate";
    case Api::cuArrayDestroy: return "cuArrayDestroy";
    case Api::cuMipmappedArrayDestroy: return "cuMipmappedArrayDestroy";
    case Api::cudaHostRegister: return "cudaHostRegister";
    case Api::cudaHostUnregister: return "cudaHostUnregister";
    case Api::cuMemHostRegister: return "cuMemHostRegister_v2";
    case Api::cuMemHostUnregister: return "cuMemHostUnregister";
    case Api::cudaIpcOpenMemHandle: return "cudaIpcOpenMemHandle";
    case Api::cudaIpcCloseMemHandle: return "cudaIpcCloseMemHandle";
    case Api::cuIpcOpenMemHandle: return "cuIpcOpenMemHandle_v2";
    case Api::cuIpcCloseMemHandle: return "cuIpcCloseMemHandle";
    case Api::cuMemImportFromShareableHandle: return "cuMemImportFromShareableHandle";
    case Api::nvml: return "nvml";
    case Api::unknown:
    case Api::count: break;
  }
  return "unknown";
}

inline const char* mem_kind_name(MemKind k) {
  switch (k) {
    case MemKind::device: return "device";
    case MemKind::managed: return "managed";
    case MemKind::pinned_host: return "pinned_host";
    case MemKind::physical: return "physical";
    case MemKind::array: return "array";
    case MemKind::imported: return "imported";
  }
  return "unknown";
}

inline MemKind mem_kind(const Record& r) { return static_cast<MemKind>(r.flags & kFlagKindMask); }

}  // namespace gpumem::trace
