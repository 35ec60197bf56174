"""NVTX from Python through ctypes, under `gpumem run` (nvtx_test.cpp, Nvtx.PythonThroughCtypes...).

Usage: nvtx_ctypes.py LIBNVTX LIBCUDART
Two Python threads each push "py.step" > "py.layer<i>" around a 1 MiB cudaMalloc; the main thread
starts "py.load" that a third thread ends, and pushes "py::infer" (domain "py") around 8 MiB.
Prints "tid NAME N" per thread, as nvtx_program does.
"""
import ctypes
import sys
import threading

nvtx = ctypes.CDLL(sys.argv[1])
cuda = ctypes.CDLL(sys.argv[2])
nvtx.nvtxRangePushA.argtypes = [ctypes.c_char_p]
nvtx.nvtxRangeStartA.argtypes = [ctypes.c_char_p]
nvtx.nvtxRangeStartA.restype = ctypes.c_uint64
nvtx.nvtxRangeEnd.argtypes = [ctypes.c_uint64]
nvtx.nvtxDomainCreateA.argtypes = [ctypes.c_char_p]
nvtx.nvtxDomainCreateA.restype = ctypes.c_void_p
nvtx.nvtxDomainRangePushEx.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
nvtx.nvtxDomainRangePop.argtypes = [ctypes.c_void_p]
nvtx.nvtxMarkA.argtypes = [ctypes.c_char_p]


class EventAttributes(ctypes.Structure):  # nvtxEventAttributes_v2
    _fields_ = [("version", ctypes.c_uint16), ("size", ctypes.c_uint16),
                ("category", ctypes.c_uint32), ("colorType", ctypes.c_int32),
                ("color", ctypes.c_uint32), ("payloadType", ctypes.c_int32),
                ("reserved0", ctypes.c_int32), ("payload", ctypes.c_uint64),
                ("messageType", ctypes.c_int32), ("message", ctypes.c_char_p)]


def tid(name):
    print(f"tid {name} {threading.get_native_id()}", flush=True)


def malloc(n):
    p = ctypes.c_void_p()
    if cuda.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(n)) != 0:
        sys.exit("nvtx_ctypes.py: cudaMalloc failed")
    return p


def worker(i):
    tid(f"worker{i}")
    nvtx.nvtxRangePushA(b"py.step")
    nvtx.nvtxRangePushA(f"py.layer{i}".encode())
    p = malloc(1 << 20)
    nvtx.nvtxRangePop()
    nvtx.nvtxRangePop()
    cuda.cudaFree(p)


tid("main")
for i in range(2):  # one after the other: the trace's order per thread is what is checked
    t = threading.Thread(target=worker, args=(i,))
    t.start()
    t.join()
load = nvtx.nvtxRangeStartA(b"py.load")
ender = threading.Thread(target=lambda: (tid("ender"), nvtx.nvtxRangeEnd(load)))
ender.start()
ender.join()
domain = nvtx.nvtxDomainCreateA(b"py")
a = EventAttributes(version=3, size=ctypes.sizeof(EventAttributes), messageType=1, message=b"infer")
nvtx.nvtxDomainRangePushEx(domain, ctypes.byref(a))
big = malloc(8 << 20)
nvtx.nvtxDomainRangePop(domain)
cuda.cudaFree(big)
nvtx.nvtxMarkA(b"py.done")
