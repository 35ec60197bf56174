#!/usr/bin/env python3
"""Utilisation (peak allocated / peak reserved) of real programs under the growth and expandable
pools (issue 19's goal), for bench/run: each workload runs under `gpumem run --device sim --pool P`
and `gpumem report --json` measures its trace. Prints one JSON line:
{"workloads": {NAME: {POOL: {"allocated": B, "reserved": B, "utilisation": R}}}}.

Usage: bench/utilisation.py [--build DIR] [--smoke]
  --smoke  a smaller trainer run (the same model, fewer samples): the point is that it runs
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

# The demo's model (scripts/demo): 128 inputs, two hidden layers of 512, 10 classes.
TRAINER = ["--epochs", "2", "--samples", "4096", "--inputs", "128", "--layers", "2", "--hidden", "512",
           "--classes", "10"]
TRAINER_SMOKE = ["--epochs", "1", "--samples", "512", "--inputs", "128", "--layers", "2", "--hidden",
                 "512", "--classes", "10"]
POOLS = ("growth", "expandable")


def measure(build, tmp, pool, argv):
    trace, report = os.path.join(tmp, f"{pool}.trace"), os.path.join(tmp, f"{pool}.json")
    for f in (trace, report):
        if os.path.exists(f):
            os.remove(f)
    # Utilisation does not depend on the device's call latency: none, so the runs are quick.
    env = dict(os.environ, SIMCUDA_ALLOC_LATENCY_US="0", SIMCUDA_FREE_LATENCY_US="0")
    gpumem = os.path.join(build, "bin", "gpumem")
    run = subprocess.run([gpumem, "run", "--device", "sim", "--pool", pool, "--trace", trace, "--"] + argv,
                         env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} under --pool {pool} exited {run.returncode}: "
                           f"{run.stderr.strip()[-300:]}")
    rep = subprocess.run([gpumem, "report", "--json", report, trace], capture_output=True, text=True)
    if rep.returncode != 0:
        raise RuntimeError(f"gpumem report exited {rep.returncode}: {rep.stderr.strip()[-300:]}")
    with open(report) as f:
        peak = json.load(f)["devices"][0]["peak"]
    a, r = peak["allocated_bytes"], peak["reserved_bytes"]
    return {"allocated": a, "reserved": r, "utilisation": a / r if r else None}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--smoke", action="store_true")
    opts = p.parse_args()
    build = os.path.abspath(opts.build)
    workloads = {
        "demo trainer": [os.path.join(build, "bin", "gpumem-train")] + (TRAINER_SMOKE if opts.smoke else TRAINER),
        # tests/expandable's scenario: eight 3 MiB blocks, every other one freed, then 12 MiB.
        "fragmenter 8 x 3 MiB": [os.path.join(build, "bin", "gpumem-fragmenter"), "8", "3MiB"],
        # Holes no granule is wholly inside: the expandable pool cannot give them back.
        "fragmenter 64 x 1 MiB": [os.path.join(build, "bin", "gpumem-fragmenter"), "64", "1MiB"],
    }
    out = {}
    with tempfile.TemporaryDirectory(prefix="gpumem-util-") as tmp:
        for name, argv in workloads.items():
            out[name] = {pool: measure(build, tmp, pool, argv) for pool in POOLS}
    print(json.dumps({"workloads": out}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError, KeyError, ValueError) as e:
        print(f"bench/utilisation.py: {e}", file=sys.stderr)
        sys.exit(1)
