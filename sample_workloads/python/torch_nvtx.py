#!/usr/bin/env python3
"""torch_train.py's MLP trained under NVTX ranges, with no gpumem call: the ranges become phases.

    gpumem run -- python3 sample_workloads/python/torch_nvtx.py            # explicit ranges
    gpumem run -- python3 sample_workloads/python/torch_nvtx.py --emit-nvtx  # + autograd's ranges

Each step is torch.cuda.nvtx.range_push("step") > "forward" | "backward" | "optimizer". With
--emit-nvtx the steps also run under torch.autograd.profiler.emit_nvtx(), which opens a range per
operator (names like "aten::addmm, seq = 12"). Prints one JSON line: the explicit ranges opened, in
order, and PyTorch's own peak, so scripts/gpu-check can compare them with the report's phases.
"""
import argparse
import contextlib
import json
import os
import sys

try:
    import torch
except ImportError:
    torch = None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--emit-nvtx", action="store_true")
    args = ap.parse_args()
    if torch is None or not torch.cuda.is_available():
        print("torch_nvtx.py: needs PyTorch with CUDA (pip install torch) and a GPU", file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_train import MLP  # the same model as torch_train.py

    dev = torch.device("cuda")
    model = MLP(args.width).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(4096, 256, device=dev)
    y = torch.randint(0, 10, (4096,), device=dev)
    opened = []

    def push(name):
        opened.append(name)
        torch.cuda.nvtx.range_push(name)

    nvtx = torch.autograd.profiler.emit_nvtx() if args.emit_nvtx else contextlib.nullcontext()
    with nvtx:
        for step in range(args.steps):
            i = (step * args.batch) % (x.shape[0] - args.batch + 1)
            push("step")
            opt.zero_grad(set_to_none=True)
            push("forward")
            loss = torch.nn.functional.cross_entropy(model(x[i:i + args.batch]),
                                                     y[i:i + args.batch])
            torch.cuda.nvtx.range_pop()
            push("backward")
            loss.backward()
            torch.cuda.nvtx.range_pop()
            push("optimizer")
            opt.step()
            torch.cuda.nvtx.range_pop()
            torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()
    print(json.dumps({"example": "torch_nvtx", "emit_nvtx": args.emit_nvtx, "ranges": opened,
                      "max_memory_allocated": torch.cuda.max_memory_allocated(),
                      "torch": torch.__version__}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
