#!/usr/bin/env python3
"""A small MLP training loop on CUDA that prints PyTorch's own view of its memory as one JSON line.

Run it under gpumem to compare the trace with PyTorch's numbers:
    gpumem run -- python3 sample_workloads/python/torch_train.py
    gpumem run --tensors --stacks python -- python3 sample_workloads/python/torch_train.py
    gpumem run --limit 1GiB -- python3 sample_workloads/python/torch_train.py --until-oom

The model's forward pass calls the functional operators itself (no nn.Linear.forward in between),
so with Python stacks each activation's innermost frame is a line of MLP.forward in this file; the
JSON names those lines ("forward_lines"). It also gives PyTorch's allocator backend and its
allocation counters (memory_stats: "allocation.all.allocated"; the cudaMallocAsync backend leaves
them at 0, see c10/cuda/CUDAMallocAsyncAllocator.cpp getDeviceStats).

--until-oom keeps allocating 64 MiB tensors until PyTorch raises torch.cuda.OutOfMemoryError, which
under a gpumem cap (GPUMEM_LIMIT) happens at the cap instead of at the card's capacity.
"""
import argparse
import inspect
import json
import sys


try:
    import torch
except ImportError:  # main() says so
    torch = None

if torch is not None:
    F = torch.nn.functional

    class MLP(torch.nn.Module):
        """256 -> width -> width -> 10; forward calls the operators itself, from this file."""

        def __init__(self, width):
            super().__init__()
            self.fc1 = torch.nn.Linear(256, width)
            self.fc2 = torch.nn.Linear(width, width)
            self.fc3 = torch.nn.Linear(width, 10)

        def forward(self, x):
            h = torch.relu(F.linear(x, self.fc1.weight, self.fc1.bias))
            h = torch.relu(F.linear(h, self.fc2.weight, self.fc2.bias))
            return F.linear(h, self.fc3.weight, self.fc3.bias)

    def forward_lines():
        """The lines of MLP.forward that allocate activations."""
        source, first = inspect.getsourcelines(MLP.forward)
        return [first + i for i, text in enumerate(source) if "F.linear(" in text]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--until-oom", action="store_true",
                    help="after training, allocate 64 MiB tensors until CUDA runs out of memory")
    ap.add_argument("--chunk-mib", type=int, default=64)
    ap.add_argument("--max-gib", type=float, default=64.0,
                    help="stop --until-oom after this much without an error (no cap in force)")
    args = ap.parse_args()

    if torch is None:
        print("torch_train.py: PyTorch is not installed; install it (pip install torch) to run "
              "this example", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("torch_train.py: torch.cuda.is_available() is False: no usable CUDA GPU here",
              file=sys.stderr)
        return 3

    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = MLP(args.width).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(4096, 256, device=dev)
    y = torch.randint(0, 10, (4096,), device=dev)
    loss = None
    for step in range(args.steps):
        i = (step * args.batch) % (x.shape[0] - args.batch + 1)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x[i:i + args.batch]), y[i:i + args.batch])
        loss.backward()
        opt.step()
    torch.cuda.synchronize()

    out = {
        "example": "torch_train",
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "final_loss": float(loss.item()) if loss is not None else None,
        "memory_allocated": torch.cuda.memory_allocated(),
        "max_memory_allocated": torch.cuda.max_memory_allocated(),
        "memory_reserved": torch.cuda.memory_reserved(),
        "max_memory_reserved": torch.cuda.max_memory_reserved(),
        "mem_get_info_total": torch.cuda.mem_get_info()[1],
        "allocator_backend": torch.cuda.get_allocator_backend(),
        "script": __file__,
        "forward_lines": forward_lines(),
    }
    stats = torch.cuda.memory_stats()
    for name in ("allocation.all.allocated", "allocation.all.freed", "allocation.all.current"):
        out[name] = stats.get(name)

    if args.until_oom:
        held = []
        chunk = args.chunk_mib << 20
        out["oom"] = False
        try:
            while len(held) * chunk < args.max_gib * (1 << 30):
                held.append(torch.empty(chunk, dtype=torch.uint8, device=dev))
        except torch.cuda.OutOfMemoryError as e:  # PyTorch's own error type
            out["oom"] = True
            out["oom_error_type"] = type(e).__name__
            out["oom_message"] = str(e).splitlines()[0][:300]
        out["chunks_before_oom"] = len(held)
        out["chunk_bytes"] = chunk
        out["memory_reserved_at_oom"] = torch.cuda.memory_reserved()
        out["max_memory_reserved"] = torch.cuda.max_memory_reserved()
        out["max_memory_allocated"] = torch.cuda.max_memory_allocated()
        del held

    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
