"""Allocates device memory from Python through ctypes, as PyTorch's bindings do: the GIL is
released for every call. Prints, as JSON on the last line, what the trace must say: for each
allocating source line, its function, file, line and bytes live at the peak, and the stacks of
the nested helpers. Run by attribution_test.cpp under the preload with GPUMEM_STACKS=python.

    python3 alloc_lines.py LIBCUDART NATIVE_HELPER
"""
import ctypes
import json
import sys
import threading

cudart = ctypes.CDLL(sys.argv[1])
native = ctypes.CDLL(sys.argv[2])
stream = ctypes.c_void_p(0)
live = []      # device pointers, freed at the end
expect = {}    # "function (file:line)" -> bytes live at the peak
FILE = __file__


def record(function, line, n):
    key = f"{function} ({FILE}:{line})"
    expect[key] = expect.get(key, 0) + n


def plain(n):
    p = ctypes.c_void_p()
    line = sys._getframe().f_lineno + 1
    assert cudart.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(n)) == 0
    record("plain", line, n)
    live.append(p)


def stream_ordered(n):
    p = ctypes.c_void_p()
    line = sys._getframe().f_lineno + 1
    assert cudart.cudaMallocAsync(ctypes.byref(p), ctypes.c_size_t(n), stream) == 0
    record("stream_ordered", line, n)
    live.append(p)


failed = {}   # "function (file:line)" -> bytes of the allocation that failed there


def too_big():
    p = ctypes.c_void_p()
    line = sys._getframe().f_lineno + 1
    assert cudart.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(1 << 50)) != 0
    failed[f"too_big ({FILE}:{line})"] = 1 << 50


class Model:
    def layer(self, n):
        return self.inner(n)

    def inner(self, n):
        p = ctypes.c_void_p()
        line = sys._getframe().f_lineno + 1
        assert cudart.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(n)) == 0
        record("Model.inner", line, n)
        live.append(p)


# A second Python thread spins in pure Python the whole time: it holds the GIL whenever the
# allocating thread does not, which must neither block nor confuse the frame reader.
stop = False


def busy():
    x = 0
    while not stop:
        x += 1


spinner = threading.Thread(target=busy)
spinner.start()
for i in range(20):
    plain(1 << 20)
    stream_ordered(3 << 19)
    Model().layer(1 << 18)

too_big()

# A C++ thread with no Python frame at all (like PyTorch's autograd engine threads).
native_ptr = ctypes.c_void_p()
assert native.allocate_on_native_thread(ctypes.c_size_t(5 << 20), ctypes.byref(native_ptr)) == 0
expect["[no Python frame] (native thread)"] = 5 << 20

# After the interpreter is finalized, a C exit handler allocates 4096 bytes (left allocated).
native.allocate_at_exit()

stop = True
spinner.join()
for p in live:
    assert cudart.cudaFree(p) == 0
assert cudart.cudaFree(native_ptr) == 0
print(json.dumps({"live_at_peak": expect, "failed": failed,
                  "nested": ["Model.inner", "Model.layer", "<module>"]}))
