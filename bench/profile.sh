#!/usr/bin/env bash
# Where the time goes in one teacher pass (the quickstart's media teacher, K = 16, 256
# descriptions) and one student epoch (a Transformer the quickstart's size, 512 descriptions):
# LibTorch's operator profiler, summarised by bench/profile.py into build/bench/profile-*.{md,json}.
# Needs a build; trains the quickstart's teachers when missing.
#   bench/profile.sh           THREADS=2 by default
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
out=build/bench
mkdir -p "$out"
build/bin/muki teacher train configs/teachers/quickstart.toml --missing-only --log-level warn
media=runs/teachers/quickstart/media
data=data/ddtp-en/train.tsv
build/bin/muki_bench_teacher_pass --checkpoint "$media" --data "$data" --examples 256 --samples 16 \
  --threads "$threads" --profile "$out/teacher_pass.trace" > /dev/null
build/bin/muki_bench_student --checkpoint "$media" --data "$data" --examples 512 \
  --threads "$threads" --profile "$out/student.trace" > /dev/null
for what in teacher_pass student; do
  echo "## $what"
  /usr/bin/python3 bench/profile.py "$out/$what.trace" --json "$out/profile-$what.json" | tee "$out/profile-$what.md"
  echo
done
