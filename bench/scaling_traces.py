#!/usr/bin/env python3
"""Writes raw gpumem traces (version 1, docs/trace-format.md) that stress one structure each, for
the "Inputs that were quadratic" table of docs/performance.md:

  scaling_traces.py oom-1tib OUT         one failed 1 TiB cudaMalloc (OOM record) on an 80 GiB device
  scaling_traces.py heaps N OUT          N allocations of 1 MiB, each with an NVTX heap and a region
  scaling_traces.py arena N OUT          one 1 GiB allocation, one heap over it, N regions of 4 KiB
  scaling_traces.py heap0 N OUT          N allocations of 1 MiB, each with an NVTX heap, then a
                                         region in each named by NVTX's process-wide heap (id 0)
  scaling_traces.py inside N OUT         N allocations of 1 MiB, each with an NVTX heap starting
                                         4 KiB inside it

then e.g. `time gpumem report --json r.json OUT` or `time gpumem replay --pool expandable OUT`.
"""
import struct
import sys

COMMITTED = 0x474D5243
NVTX = 32


def header(capacity=80 << 30):
    h = bytearray(65536)
    struct.pack_into("<8sIIIIiIQQQII", h, 0, b"GPUMEMTR", 1, 65536, 64, 1234, -1, 0, 1000, 0, 0, 1, 0)
    struct.pack_into("<QQ96sII", h, 192, capacity, 0, b"scaling", 1, 0)  # devices[0]
    return h


def rec(t, op, address=0, nbytes=0, aux=0, api=1, stream=0, flags=0, result=0):
    return struct.pack("<QQQQQIIiHHhHI", t, address, nbytes, stream, aux, 1, 0, result, op, api, 0,
                       flags, COMMITTED)


def main(argv):
    mode, out = argv[1], argv[-1]
    body = bytearray()
    if mode == "oom-1tib":
        body += rec(2000, 3, nbytes=1 << 40, result=2)   # alloc_failed
        body += rec(2000, 25, nbytes=1 << 40, result=2)  # oom: nothing allocated, nothing reserved
    elif mode == "heaps":
        for i in range(int(argv[2])):
            a = 0x100000 * (i + 1)
            body += rec(2000 + i, 1, address=a, nbytes=1 << 20)  # alloc
            body += rec(2000 + i, 19, address=a, nbytes=1 << 20, aux=i + 1, api=NVTX)  # heap
            body += rec(2000 + i, 22, address=a, nbytes=64, aux=i + 1, api=NVTX)  # region
    elif mode == "arena":
        base = 0x7F0000000000
        body += rec(1500, 1, address=base, nbytes=1 << 30)
        body += rec(1500, 19, address=base, nbytes=1 << 30, aux=7, api=NVTX)
        for i in range(int(argv[2])):
            body += rec(2000 + i, 22, address=base + 4096 * i, nbytes=4096, aux=7, api=NVTX)
    elif mode in ("heap0", "inside"):
        n = int(argv[2])
        skip = 4096 if mode == "inside" else 0
        for i in range(n):
            a = 0x100000 * (i + 1)
            body += rec(2000 + i, 1, address=a, nbytes=1 << 20)  # alloc
            body += rec(2000 + i, 19, address=a + skip, nbytes=(1 << 20) - skip, aux=i + 1,
                        api=NVTX)  # heap
        if mode == "heap0":
            for i in range(n):
                a = 0x100000 * (i + 1)
                body += rec(2000 + n + i, 22, address=a + 64, nbytes=64, aux=0, api=NVTX)
    else:
        sys.exit(__doc__)
    with open(out, "wb") as f:
        f.write(bytes(header()) + bytes(body))


if __name__ == "__main__":
    main(sys.argv)
