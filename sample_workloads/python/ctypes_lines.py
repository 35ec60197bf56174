#!/usr/bin/env python3
"""Device memory from plain Python through ctypes, with no framework: the reference for what
`gpumem run --stacks python` must say. Prints one JSON line with the program's own counts: the
allocations it made (by API), the peak it held, and the bytes each source line holds at the peak
("function (file:line)", the form of the report's `python_line`).

    gpumem run --stacks python -- python3 sample_workloads/python/ctypes_lines.py

ctypes releases the GIL around each CUDA call, as PyTorch's bindings do. Runs on a real GPU and
on simcuda (put build/simcuda-lib first on LD_LIBRARY_PATH). --cudart names the runtime library.
"""
import argparse
import ctypes
import json
import sys

FILE = __file__
MIB = 1 << 20


class Program:
    def __init__(self, cudart):
        self.cudart = cudart
        self.live = []          # (pointer, bytes, stream-ordered, line key)
        self.held = 0
        self.peak = 0
        self.by_api = {}
        self.by_line = {}       # "function (file:line)" -> bytes it holds now
        self.at_peak = {}

    def note(self, function, line, api, nbytes):
        key = f"{function} ({FILE}:{line})"
        self.by_line[key] = self.by_line.get(key, 0) + nbytes
        self.by_api[api] = self.by_api.get(api, 0) + 1
        self.held += nbytes
        if self.held > self.peak:
            self.peak, self.at_peak = self.held, {k: v for k, v in self.by_line.items() if v}
        return key

    def weights(self, nbytes):
        p = ctypes.c_void_p()
        line = sys._getframe().f_lineno + 1
        rc = self.cudart.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(nbytes))
        if rc != 0:
            raise RuntimeError(f"cudaMalloc({nbytes}) failed with error {rc}")
        self.live.append(
            (p, nbytes, False, self.note("Program.weights", line, "cudaMalloc", nbytes)))

    def activation(self, nbytes):
        p = ctypes.c_void_p()
        line = sys._getframe().f_lineno + 1
        rc = self.cudart.cudaMallocAsync(ctypes.byref(p), ctypes.c_size_t(nbytes), None)
        if rc != 0:
            raise RuntimeError(f"cudaMallocAsync({nbytes}) failed with error {rc}")
        self.live.append(
            (p, nbytes, True, self.note("Program.activation", line, "cudaMallocAsync", nbytes)))

    def layer(self, nbytes):
        self.activation(nbytes)

    def free(self, stream_ordered):
        """Frees the stream-ordered allocations (the step's activations) or the others."""
        keep = []
        for p, nbytes, is_async, key in self.live:
            if is_async != stream_ordered:
                keep.append((p, nbytes, is_async, key))
                continue
            rc = self.cudart.cudaFreeAsync(p, None) if is_async else self.cudart.cudaFree(p)
            if rc != 0:
                raise RuntimeError(f"freeing {p.value:#x} failed with error {rc}")
            self.by_line[key] -= nbytes
            self.held -= nbytes
        self.live = keep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cudart", default="libcudart.so.13", help="the CUDA runtime to load")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    try:
        cudart = ctypes.CDLL(args.cudart)
    except OSError as e:
        print(f"ctypes_lines.py: cannot load {args.cudart} ({e}); put the CUDA runtime's folder on "
              "LD_LIBRARY_PATH or pass --cudart PATH", file=sys.stderr)
        return 3
    prog = Program(cudart)
    for _ in range(2):
        prog.weights(4 * MIB)
    # Each step holds more than the one before, so the last step's set is the peak.
    for step in range(args.steps):
        for k in range(step + 2):
            prog.layer((k + 1) * MIB)
        prog.free(stream_ordered=True)
    prog.free(stream_ordered=False)
    if cudart.cudaDeviceSynchronize() != 0:
        print("ctypes_lines.py: cudaDeviceSynchronize failed", file=sys.stderr)
        return 1
    print(json.dumps({"example": "ctypes_lines", "python": sys.version.split()[0],
                      "allocs": sum(prog.by_api.values()), "by_api": prog.by_api,
                      "peak_bytes": prog.peak, "live_at_peak": prog.at_peak}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
