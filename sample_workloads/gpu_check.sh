#!/usr/bin/env bash
# GPU check for gpumem-train: on a machine with a real GPU, runs each configuration with the CUDA
# backend and again with the host backend on simcuda, and compares every epoch's loss and the
# bytes by category. Usage: sample_workloads/gpu_check.sh [BUILD_DIR]   (default: build)
# Exit status 0 when every configuration matches; prints one line per configuration.
set -uo pipefail
build=${1:-build}
exe="$build/bin/gpumem-train"
sim="$build/simcuda-lib"
[ -x "$exe" ] || { echo "gpu_check: $exe not found; build gpumem first" >&2; exit 2; }
[ -f "$build/lib/libgpumem_train_cuda.so" ] || {
  echo "gpu_check: $build/lib/libgpumem_train_cuda.so missing: configure where nvcc is found" >&2; exit 2; }
[ -f "$sim/libcudart.so.13" ] || { echo "gpu_check: simcuda not built in $sim" >&2; exit 2; }

# configuration | relative tolerance on the losses. Measured on an H200 (2026-11): at most 1.5e-6
# (fp32) and 1.2e-6 (fp16); the tolerances leave room for other GPUs and summation orders.
configs=(
  "--epochs 5|1e-4"
  "--epochs 3 --batch 8 --accum 4|1e-4"
  "--epochs 3 --data stream --async|1e-4"
  "--epochs 3 --layers 3 --hidden 48 --inputs 37 --classes 7|1e-4"
  "--epochs 3 --dtype fp16|1e-3"
  "--epochs 3 --dtype fp16 --accum 2 --batch 16 --data stream|1e-3"
)
failed=0
for entry in "${configs[@]}"; do
  args=${entry%|*} tol=${entry#*|}
  cuda_out=$("$exe" --backend cuda $args 2>&1); cuda_rc=$?
  host_out=$(LD_LIBRARY_PATH="$sim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$exe" --backend host $args 2>&1); host_rc=$?
  if [ $cuda_rc -ne 0 ] || [ $host_rc -ne 0 ]; then
    echo "FAIL $args: exit codes cuda $cuda_rc, host $host_rc"; echo "$cuda_out" | tail -3; echo "$host_out" | tail -3
    failed=1; continue
  fi
  verdict=$(awk -v tol="$tol" '
    FNR == 1 { file++ }
    /^epoch / { for (i = 1; i <= NF; i++) if ($i == "loss") loss[file, $2] = $(i + 1); n[file]++ }
    /^\{/ { match($0, /"bytes_by_category":\{[^}]*\}/); bytes[file] = substr($0, RSTART, RLENGTH)
           match($0, /"final_loss":[-0-9.e+]*/); final[file] = substr($0, RSTART + 13, RLENGTH - 13) + 0 }
    END {
      worst = 0; ok = n[1] == n[2] && n[1] > 0 && bytes[1] == bytes[2]
      for (k in loss) { split(k, p, SUBSEP); if (p[1] != 1) continue
        a = loss[1, p[2]]; b = loss[2, p[2]]; d = (a > b ? a - b : b - a) / (b > 0 ? b : 1)
        if (d > worst) worst = d; if (d > tol) ok = 0 }
      a = final[1]; b = final[2]; fd = (a > b ? a - b : b - a) / (b > 0 ? b : 1)
      if (fd > tol || a == 0) ok = 0
      printf "%s final loss cuda %.7f host %.7f (relative difference %.2e), epoch losses within %.2e (tolerance %s)%s",
             ok ? "ok  " : "FAIL", a, b, fd, worst, tol,
             bytes[1] == bytes[2] ? "" : ", bytes by category differ" }' \
    <(echo "$cuda_out") <(echo "$host_out"))
  echo "$verdict: $args"
  echo "    cuda: $(echo "$cuda_out" | grep '^epoch' | tail -1)"
  echo "    host: $(echo "$host_out" | grep '^epoch' | tail -1)"
  case $verdict in FAIL*) failed=1 ;; esac
done
exit $failed
