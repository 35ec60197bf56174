#!/usr/bin/env python3
"""A small JAX program (JAX reaches the CUDA driver through dlopen/dlsym, not through cudart).

    gpumem run -- python3 sample_workloads/python/jax_train.py
    gpumem run --tensors --stacks python -- python3 sample_workloads/python/jax_train.py
    XLA_PYTHON_CLIENT_PREALLOCATE=false gpumem run --limit 2GiB -- \
        python3 sample_workloads/python/jax_train.py --exceed

By default XLA preallocates 75% of the capacity that cuMemGetInfo reports (under a gpumem cap, 75%
of the cap); with XLA_PYTHON_CLIENT_PREALLOCATE=false it grows on demand. --exceed keeps
allocating 256 MiB arrays until JAX reports that it is out of memory. Prints one JSON line, with
XLA's allocator statistics (device.memory_stats(): num_allocs, bytes_in_use, peak_bytes_in_use...;
under XLA_PYTHON_CLIENT_ALLOCATOR=cuda_async they count every buffer's cuMemAllocFromPoolAsync).
"""
import argparse
import json
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--exceed", action="store_true")
    ap.add_argument("--chunk-mib", type=int, default=256)
    ap.add_argument("--max-gib", type=float, default=64.0)
    args = ap.parse_args()
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        print("jax_train.py: JAX is not installed", file=sys.stderr)
        return 3
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus:
        print("jax_train.py: JAX sees no GPU", file=sys.stderr)
        return 3

    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    w1 = jax.random.normal(k1, (256, 1024)) * 0.05
    w2 = jax.random.normal(k2, (1024, 10)) * 0.05
    x = jax.random.normal(k3, (2048, 256))
    y = jnp.argmax(x[:, :10], axis=1)

    def loss_fn(params):
        a, b = params
        logits = jax.nn.relu(x @ a) @ b
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])

    step = jax.jit(lambda p: jax.tree_util.tree_map(lambda w, g: w - 0.1 * g, p,
                                                    jax.grad(loss_fn)(p)))
    params = (w1, w2)
    first = float(loss_fn(params))
    for _ in range(args.steps):
        params = step(params)
    last = float(loss_fn(params))

    out = {"example": "jax_train", "jax": jax.__version__, "device": str(gpus[0]),
           "first_loss": first, "final_loss": last,
           "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "true"),
           "allocator": os.environ.get("XLA_PYTHON_CLIENT_ALLOCATOR", "default"),
           "script": __file__}
    try:
        stats = gpus[0].memory_stats()
        out["memory_stats"] = "none" if stats is None else "yes"
        stats = stats or {}
        for name in ("num_allocs", "bytes_in_use", "peak_bytes_in_use", "largest_alloc_size",
                     "bytes_limit", "bytes_reserved"):
            out[name] = stats.get(name)
    except Exception as e:  # noqa: BLE001
        out["memory_stats"] = f"unavailable: {type(e).__name__}"

    if args.exceed:
        held = []
        chunk = args.chunk_mib << 20
        out["oom"] = False
        try:
            while len(held) * chunk < args.max_gib * (1 << 30):
                a = jnp.ones((chunk // 4,), dtype=jnp.float32)
                a.block_until_ready()
                held.append(a)
        except Exception as e:  # XlaRuntimeError: RESOURCE_EXHAUSTED
            text = str(e)
            out["oom"] = "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()
            out["oom_error_type"] = type(e).__name__
            out["oom_message"] = text.splitlines()[0][:300] if text else ""
        out["chunks_before_oom"] = len(held)
        out["chunk_bytes"] = chunk
        try:
            stats = gpus[0].memory_stats() or {}
            out["peak_bytes_in_use"] = stats.get("peak_bytes_in_use")
            out["bytes_limit"] = stats.get("bytes_limit")
        except Exception:  # noqa: BLE001
            pass
        del held
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
