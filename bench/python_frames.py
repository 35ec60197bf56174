#!/usr/bin/env python3
"""The cost of Python frame capture per allocation (GPUMEM_STACKS=python), at 10 and 40 Python
frames deep, against the same Python loop under the preload without stacks, a moment apart.

A child Python recurses to the depth, then times N cudaMalloc(256) calls through ctypes
(as PyTorch's bindings call CUDA: GIL released) on the simulated device. Each configuration runs
ROUNDS times, interleaved; the median is kept. Prints one JSON object:
  {"depth": {"10": {"none": ns, "off": ns, "python": ns, "native": ns}, "40": {...}}, ...}
where each figure is ns per cudaMalloc (the frees follow, untimed) and
  none    no preload at all
  off     the preload, GPUMEM_STACKS=0 (tracing only)
  python  the preload, GPUMEM_STACKS=python
  native  the preload, GPUMEM_STACKS=1 (native stacks, for comparison)

Usage: bench/python_frames.py [--build DIR] [--smoke]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import ctypes, sys, time
cudart = ctypes.CDLL(sys.argv[1])
depth, n = int(sys.argv[2]), int(sys.argv[3])
malloc, free = cudart.cudaMalloc, cudart.cudaFree
def loop():
    ptrs = [ctypes.c_void_p() for _ in range(n)]
    size = ctypes.c_size_t(256)
    for p in ptrs[: n // 10]:  # warm-up: the first sight of each frame is named once
        malloc(ctypes.byref(p), size)
        free(p)
    refs = [ctypes.byref(p) for p in ptrs]
    t0 = time.perf_counter_ns()
    for ref in refs:
        malloc(ref, size)
    elapsed = time.perf_counter_ns() - t0
    for p in ptrs:
        free(p)
    return elapsed / n
def down(k):
    return down(k - 1) if k > 2 else loop()   # <module> + down frames + loop = depth
print(down(depth - 1))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--smoke", action="store_true")
    opts = p.parse_args()
    build = os.path.abspath(opts.build)
    simcuda = os.path.join(build, "simcuda-lib")
    preload = os.path.join(build, "lib", "libgpumem.so")
    n, rounds = (2000, 1) if opts.smoke else (50000, 5)
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "child.py")
        with open(script, "w") as f:
            f.write(CHILD)
        configs = {"none": None, "off": "0", "python": "python", "native": "1"}
        results = {}
        for depth in (10, 40):
            samples = {c: [] for c in configs}
            for _ in range(rounds):
                for name, stacks in configs.items():
                    env = {k: v for k, v in os.environ.items()
                           if not k.startswith(("GPUMEM_", "LD_PRELOAD"))}
                    env["LD_LIBRARY_PATH"] = simcuda
                    if stacks is not None:
                        env.update(LD_PRELOAD=preload, GPUMEM_STACKS=stacks,
                                   GPUMEM_TRACE=os.path.join(tmp, "t-%p.trace"))
                    out = subprocess.run([sys.executable, script, os.path.join(simcuda, "libcudart.so.13"),
                                          str(depth), str(n)], env=env, capture_output=True, text=True)
                    if out.returncode != 0:
                        sys.exit(f"python_frames: child failed ({name}, depth {depth}): {out.stderr[-400:]}")
                    samples[name].append(float(out.stdout.strip().splitlines()[-1]))
                    for f in os.listdir(tmp):
                        if f.endswith(".trace"):
                            os.unlink(os.path.join(tmp, f))
            results[str(depth)] = {c: statistics.median(v) for c, v in samples.items()}
    print(json.dumps({"depth": results, "pairs": n, "rounds": rounds, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
