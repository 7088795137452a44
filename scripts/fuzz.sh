#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (CMake preset "fuzz": clang-14, ASan + UBSan, the torch-free half)
# and runs each for SECONDS (default 60), starting from a copy of its committed seed corpus
# (tests/fuzz/corpus/<name>): what a run discovers stays in build-fuzz/fuzz-run, the committed
# corpus never grows. Prints one line per fuzzer. Exits 1 when any fuzzer found something (crash,
# leak, timeout, out-of-memory, sanitizer report); its input is kept in
# build-fuzz/fuzz-findings/<name>/ and the line names it. Reproduce one with
#   build-fuzz/tests/fuzz/muki_fuzz_<name> build-fuzz/fuzz-findings/<name>/crash-...
# Needs clang-14 and libclang-rt-14-dev (scripts/install-deps.sh).
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS]   (seconds per fuzzer, default 60)" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
root="$PWD"

if ! out=$(cmake --preset fuzz 2>&1); then
  echo "$out" >&2
  echo "fuzz: configuring the \"fuzz\" preset failed (clang-14 and libclang-rt-14-dev installed?)" >&2
  exit 1
fi
started=$SECONDS
if ! out=$(cmake --build --preset fuzz -j 2 2>&1); then
  echo "$out" >&2
  echo "fuzz: the build failed" >&2
  exit 1
fi
echo "fuzz: built in $((SECONDS - started)) s; running each fuzzer for $seconds s"

build="$root/build-fuzz"
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=0
for corpus in "$root"/tests/fuzz/corpus/*/; do
  name=$(basename "$corpus")
  binary="$build/tests/fuzz/muki_fuzz_$name"
  run="$build/fuzz-run/$name"
  findings="$build/fuzz-findings/$name"
  rm -rf "$run"
  mkdir -p "$run/corpus" "$run/tmp" "$findings"
  cp "$corpus"* "$run/corpus/"
  log="$run/fuzz.log"
  rc=0
  # -timeout: one input running that long is a hang. The outer timeout only guards against
  # libFuzzer itself not stopping.
  TMPDIR="$run/tmp" timeout $((seconds + 120)) "$binary" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$findings/" "$run/corpus" \
    > "$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#' || true)
  found=$(grep -oE "(crash|leak|timeout|oom)-[0-9a-f]+" "$log" | sort -u | head -n 3 || true)
  reported=$(grep -cE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:" "$log" || true)
  if [ "$rc" -eq 0 ] && [ "$reported" -eq 0 ]; then
    printf '  %-14s %9s runs in %s s   nothing found\n' "$name" "${runs:-?}" "$seconds"
  else
    failed=1
    printf '  %-14s %9s runs          FOUND something (exit %s), log %s\n' "$name" "${runs:-?}" "$rc" "$log"
    for f in $found; do
      if [ -e "$findings/$f" ]; then echo "                 input: $findings/$f"; fi
    done
    grep -m 3 -E "ERROR: |runtime error:|SUMMARY:" "$log" | sed 's/^/                 /' || true
  fi
done
exit "$failed"
