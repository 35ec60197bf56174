#!/bin/sh
# The differential suite (issue 28; docs/policies.md, "Pools do not change what CUDA answers"):
# runs differential_program on the raw simulated device, then under LD_PRELOAD=libgpumem.so with
# each policy, and compares every line. A line may differ only where allowed.txt lists the
# configuration and the call, and then only as the policy's own refusal: the out-of-memory code
# (cudaErrorMemoryAllocation and CUDA_ERROR_OUT_OF_MEMORY are both 2); a row names the calls by
# the start of their line. A "skipped" line (a call that needed an allocation the policy refused)
# differs only after such a refusal.
#
# usage: differential_check.sh PROGRAM PRELOAD ALLOWED [CONFIG ...]
#   CONFIG: name:VAR=VALUE,VAR=VALUE (default: the list below)
# The environment must already put the simulated CUDA first (LD_LIBRARY_PATH, SIMCUDA_MEMORY).
set -u
program=$1 preload=$2 allowed=$3
shift 3
if [ $# -eq 0 ]; then
  set -- none:GPUMEM_POOL=none \
    limit:GPUMEM_POOL=none,GPUMEM_LIMIT=64MiB \
    growth:GPUMEM_POOL=growth \
    growth+limit:GPUMEM_POOL=growth,GPUMEM_LIMIT=64MiB \
    fixed:GPUMEM_POOL=fixed,GPUMEM_POOL_SIZE=64MiB \
    fixed+limit:GPUMEM_POOL=fixed,GPUMEM_LIMIT=64MiB \
    expandable:GPUMEM_POOL=expandable \
    expandable+limit:GPUMEM_POOL=expandable,GPUMEM_LIMIT=64MiB
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/gpumem-differential.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

"$program" >"$work/raw" 2>"$work/raw.err"
rc=$?
if [ $rc -ne 0 ]; then
  echo "differential: the program failed on the raw device (exit status $rc):" >&2
  cat "$work/raw.err" >&2
  exit 1
fi
lines=$(wc -l <"$work/raw")
echo "raw: $lines calls"

status=0
for spec in "$@"; do
  name=${spec%%:*}
  vars=$(printf '%s' "${spec#*:}" | tr ',' ' ')
  # shellcheck disable=SC2086 # one word per VAR=VALUE
  env GPUMEM_TRACE="$work/$name.trace" GPUMEM_LOG=warn $vars LD_PRELOAD="$preload" \
    "$program" >"$work/$name" 2>"$work/$name.err"
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "differential: $name: the program failed under gpumem ($vars; exit status $rc):" >&2
    cat "$work/$name.err" >&2
    status=1
    continue
  fi
  # Line by line: raw | policy | allowed rows of this configuration.
  if ! awk -v name="$name" -v allowed="$allowed" -v raw="$work/raw" -F' [|] ' '
    BEGIN {
      while ((getline row < allowed) > 0) {
        if (row ~ /^#/ || row ~ /^[ \t]*$/) continue
        split(row, f, /[ \t]*[|][ \t]*/)
        if (f[1] != name) continue
        rows += split(f[2], calls, /[ \t]*,[ \t]*/)
        for (c in calls) prefix[calls[c]] = 1
      }
      n = 0
      while ((getline row < raw) > 0) raw_line[++n] = row
    }
    function listed(call,   p) {
      for (p in prefix) if (index(call, p) == 1) return 1
      return 0
    }
    {
      i = NR
      if (i > n) { print name ": extra line " i ": " $0; bad = 1; next }
      if ($0 == raw_line[i]) next
      split(raw_line[i], r, / [|] /)
      if ($1 != r[1]) { print name ": line " i " is " $1 ", raw has " r[1]; bad = 1; next }
      if ($2 ~ /^skipped/ && refused) { allowed_count++; next }
      if ($2 == "2" && listed($1)) { refused = 1; allowed_count++; next }
      print name ": " $1 ": raw answers \"" r[2] " " r[3] "\", gpumem answers \"" $2 " " $3 "\""
      bad = 1
    }
    END {
      if (NR < n) { print name ": " n - NR " lines missing"; bad = 1 }
      printf "%s: %d calls, %d allowed differences%s\n", name, NR, allowed_count, bad ? ", FAILED" : ""
      exit bad
    }' "$work/$name"; then
    status=1
    echo "--- $name: gpumem's stderr:"
    cat "$work/$name.err"
  fi
done
exit $status
