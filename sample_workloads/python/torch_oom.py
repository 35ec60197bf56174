#!/usr/bin/env python3
"""PyTorch running out of memory on purpose, for gpumem's OOM forensics (docs/oom.md): allocates
256 MiB tensors until an allocation fails, and in the except block prints one JSON line with
torch.cuda.memory_stats()'s own numbers, then PyTorch's message on stderr, and exits 1.

    gpumem run --limit 1000MiB -- python3 sample_workloads/python/torch_oom.py

gpumem's explanation follows PyTorch's message on stderr; scripts/gpu-check compares its numbers
with the JSON line (check_torch_oom).
"""
import json
import sys


def main() -> int:
    try:
        import torch
    except ImportError:
        print("torch_oom.py: PyTorch is not installed", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("torch_oom.py: no CUDA device; run it on a GPU", file=sys.stderr)
        return 3
    step = 256 << 20
    held = []
    try:
        for _ in range(1024):
            held.append(torch.empty(step, dtype=torch.uint8, device="cuda"))
    except torch.cuda.OutOfMemoryError as e:
        s = torch.cuda.memory_stats()
        print(json.dumps({"tensors": len(held), "tensor_bytes": step,
                          "allocated": s["allocated_bytes.all.current"],
                          "reserved": s["reserved_bytes.all.current"],
                          "num_ooms": s["num_ooms"]}), flush=True)
        print(f"torch_oom.py: {e}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps({"tensors": len(held), "oom": False}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
