#!/usr/bin/env python3
"""PyTorch with gpumem as its allocator (CUDAPluggableAllocator): every tensor allocation goes
through gpumem's pool and trace, so the trace is tensor-level, which interposing cudaMalloc cannot
give (PyTorch's caching allocator hides tensors inside its segments).

    GPUMEM_TRACE=torch-%p.trace python3 sample_workloads/python/torch_pluggable.py \
        --lib build/lib/libgpumem.so

Prints one JSON line. The allocator must be installed before the first CUDA tensor exists.
"""
import argparse
import json
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", required=True, help="path to libgpumem.so")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if not os.path.exists(args.lib):
        print(f"torch_pluggable.py: {args.lib} does not exist; build gpumem first "
              "(cmake --build build) and pass --lib build/lib/libgpumem.so", file=sys.stderr)
        return 2
    try:
        import torch
    except ImportError:
        print("torch_pluggable.py: PyTorch is not installed", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("torch_pluggable.py: no usable CUDA GPU here", file=sys.stderr)
        return 3

    alloc = torch.cuda.memory.CUDAPluggableAllocator(
        os.path.abspath(args.lib), "gpumem_torch_malloc", "gpumem_torch_free")
    torch.cuda.memory.change_current_allocator(alloc)

    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = torch.nn.Sequential(torch.nn.Linear(128, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 10)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(1024, 128, device=dev)
    y = torch.randint(0, 10, (1024,), device=dev)
    first = last = None
    for _ in range(args.steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        last = float(loss.item())
        first = last if first is None else first
    torch.cuda.synchronize()

    out = {"example": "torch_pluggable", "lib": args.lib, "first_loss": first, "final_loss": last,
           "torch": torch.__version__}
    # A pluggable allocator keeps no statistics of PyTorch's own; report what PyTorch offers.
    for name in ("memory_allocated", "max_memory_allocated", "max_memory_reserved"):
        try:
            out[name] = getattr(torch.cuda, name)()
        except Exception as e:  # noqa: BLE001 - PyTorch raises several types here
            out[name] = f"unavailable: {type(e).__name__}"
    print(json.dumps(out), flush=True)
    return 0 if last is not None and last < first else 4


if __name__ == "__main__":
    sys.exit(main())
