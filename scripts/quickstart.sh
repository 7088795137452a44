#!/usr/bin/env bash
# The README's main command: installs, builds, runs configs/quickstart.toml (MUKI: MC dropout,
# calibrated per teacher, + weighted + margin; its [prepare] trains the teachers when missing), its
# variants (kNN feature certainty), the baselines the paper compares it with (vanilla KD, UHC, DFA,
# CFL) and the supervised upper bound, on the embedded dataset (Debian package descriptions, 8
# sections), and prints the comparison table. Teacher passes are cached in runs/cache, so the variants after the first
# cost only their student; a second invocation reuses every finished run.
#   scripts/quickstart.sh [CONFIG]   another experiment over data/ddtp-en, such as
#                                    configs/pretrained/quickstart.toml (pre-trained teachers and
#                                    student); runs are named <its experiment.name>-<variant>
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
  "dfa|integration={strategy=\"dfa\"}"
  "cfl|integration={strategy=\"cfl\"}"
)
runs=()
for variant in "${variants[@]}"; do
  IFS='|' read -r name overrides <<< "$variant"
  args=(--set "experiment.name=\"$prefix-$name\"")
  IFS='|' read -ra sets <<< "$overrides"
  for s in "${sets[@]}"; do [ -n "$s" ] && args+=(--set "$s"); done
  "$muki" run "$config" "${args[@]}"
  runs+=("runs/$prefix-$name")
done

echo
echo "Test split of data/ddtp-en (550 descriptions, 8 sections); accuracies in percent:"
"$muki" compare "${runs[@]}"
