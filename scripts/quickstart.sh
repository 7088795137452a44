#!/usr/bin/env bash
# The README's main command: installs, builds, runs configs/quickstart.toml (MUKI: MC dropout,
# calibrated per teacher, + weighted + margin; its [prepare] trains the teachers when missing), its
# variants (feature-space certainty: kNN, the density ratio against the transfer set), the
# baselines the paper compares it with (vanilla KD, UHC, DFA, CFL) and the supervised upper bound,
# on the embedded dataset (Debian package descriptions, 8 sections), and prints the comparison
# table. The runs go side by side (below) and share their teachers and teacher passes, which are
# cached in runs/cache; a second invocation reuses every finished run.
#   scripts/quickstart.sh [CONFIG]   another experiment over data/ddtp-en, such as
#                                    configs/fast/quickstart.toml (the speed options on: bf16
#                                    teachers, passes and student; for hardware with native bf16)
#                                    or configs/pretrained/quickstart.toml (pre-trained teachers
#                                    and student); runs are named <its experiment.name>-<variant>
#   MUKI_JOBS=N scripts/quickstart.sh  N runs at a time (default: the core count)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/quickstart.toml}
prefix=$(sed -n 's/^name = "\(.*\)"/\1/p' "$config" | head -1)

bash scripts/install-deps.sh
cmake --preset default > /dev/null
cmake --build --preset default -j "$(nproc)"
muki=build/bin/muki

# name | overrides (TOML values; a table replaces the whole table)
variants=(
  "supervised|integration={strategy=\"gold\"}|data.transfer.label=\"label\""
  "vanilla-kd|integration={strategy=\"concat\"}"
  "uhc|integration={strategy=\"uhc\"}"
  "entropy-max|uncertainty={strategy=\"entropy\"}|integration={strategy=\"max\",options={margin_reweighting=false}}"
  "mc-max|integration={strategy=\"max\",options={margin_reweighting=false}}"
  "mc-weighted|integration={strategy=\"weighted\",options={tau=0.2,margin_reweighting=false}}"
  "mc-weighted-margin"
  "knn-max|uncertainty={strategy=\"knn\"}|integration={strategy=\"max\",options={margin_reweighting=false}}"
  "knn-weighted-margin|uncertainty={strategy=\"knn\"}"
  "density-ratio-max|uncertainty={strategy=\"density_ratio\"}|integration={strategy=\"max\",options={margin_reweighting=false}}"
  "dfa|integration={strategy=\"dfa\"}"
  "cfl|integration={strategy=\"cfl\"}"
)
# The runs go side by side, one single-thread process a core (MUKI_JOBS=N: N at once, the cores
# shared out): on models this small, two one-thread processes do 1.2-1.5x the work of one
# two-thread process on 2 cores (bench/README.md). Runs of one config divide their teachers'
# training and passes between them (each teacher and each cached chunk is claimed with a lock), so
# nothing is computed twice. Each run's output goes to runs/logs/<its name>.log.
jobs=${MUKI_JOBS:-$(nproc)}
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "quickstart: MUKI_JOBS must be a positive integer, not '$jobs'" >&2; exit 2; }
threads=$(( $(nproc) / jobs ))
[ "$threads" -ge 1 ] || threads=1
mkdir -p runs/logs
declare -A name_of
trap 'kill $(jobs -p) 2> /dev/null || true; exit 130' INT TERM
runs=() running=0 failed=0 started=$SECONDS
finish_one() {  # waits until one of the runs has ended, and reports it
  local pid status
  while :; do
    for pid in "${!name_of[@]}"; do
      kill -0 "$pid" 2> /dev/null && continue  # still running
      status=0
      wait "$pid" || status=$?  # bash keeps an ended job's status until it is asked for
      local name=${name_of[$pid]}
      unset "name_of[$pid]"
      running=$(( running - 1 ))
      if [ "$status" -eq 0 ]; then
        echo "$name: done ($(( SECONDS - started )) s since the start)"
      else
        echo "$name: failed with exit code $status; the end of runs/logs/$name.log:" >&2
        tail -n 20 "runs/logs/$name.log" >&2
        failed=1
      fi
      return
    done
    sleep 0.2
  done
}
for variant in "${variants[@]}"; do
  IFS='|' read -r name overrides <<< "$variant"
  args=(--set "experiment.name=\"$prefix-$name\"")
  IFS='|' read -ra sets <<< "$overrides"
  for s in "${sets[@]}"; do [ -n "$s" ] && args+=(--set "$s"); done
  [ "$running" -lt "$jobs" ] || finish_one
  OMP_NUM_THREADS=$threads "$muki" run "$config" "${args[@]}" > "runs/logs/$prefix-$name.log" 2>&1 &
  name_of[$!]=$prefix-$name
  running=$(( running + 1 ))
  echo "$prefix-$name: started"
  runs+=("runs/$prefix-$name")
done
while [ "$running" -gt 0 ]; do finish_one; done
[ "$failed" -eq 0 ] || { echo "quickstart: a run failed (above)" >&2; exit 1; }
echo
echo "Test split of data/ddtp-en (550 descriptions, 8 sections); accuracies in percent:"
"$muki" compare "${runs[@]}"
