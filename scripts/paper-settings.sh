#!/usr/bin/env bash
# Reproduces the README's results: for each setting the paper studies (configs/*.toml), the label-
# free methods side by side, three seeds each, with `muki sweep` (teachers are trained first by
# each config's [prepare] when missing; teacher passes are cached in runs/cache); on the
# quickstart, integration x uncertainty and the two baselines. Run it (from anywhere) after
# scripts/quickstart.sh or scripts/test.sh has built muki. On a 2-core machine: two to three hours
# from nothing, most of it MC-dropout teacher passes.
#   scripts/paper-settings.sh [SETTING...]     (default: all; a setting is a config's name)
set -euo pipefail
cd "$(dirname "$0")/.."
muki=build/bin/muki
seeds=${SEEDS:-1,2,3}
# MUKI's two integrations as the README's table runs them (`max` and `weighted`).
max='{strategy="max",options={margin_reweighting=false}}'
weighted='{strategy="weighted",options={tau=0.2,margin_reweighting=true}}'

failed=()
settings=("$@")
[ ${#settings[@]} -gt 0 ] || settings=(quickstart four_teachers heterogeneous cross_lingual overlapping wordnet_four incremental_stage2)
for setting in "${settings[@]}"; do
  # One setting's failure (reported in its table) does not stop the others.
  set +e
  case "$setting" in
    quickstart)
      "$muki" sweep configs/quickstart.toml --seeds "$seeds" --log-level warn \
        --grid 'uncertainty={strategy="entropy"},{strategy="mc_dropout",options={samples=16}}' \
        --grid "integration=$max,$weighted" &&
      "$muki" sweep configs/quickstart.toml --seeds "$seeds" --log-level warn --output runs/quickstart-baselines-sweep \
        --grid 'integration={strategy="concat"},{strategy="uhc"}' ;;
    overlapping)  # uhc refuses overlapping label sets: leave it out
      "$muki" sweep configs/overlapping.toml --seeds "$seeds" --log-level warn \
        --grid "integration={strategy=\"concat\"},$max,$weighted" ;;
    *)
      "$muki" sweep "configs/$setting.toml" --seeds "$seeds" --log-level warn \
        --grid "integration={strategy=\"concat\"},{strategy=\"uhc\"},$max,$weighted" ;;
  esac
  [ $? -eq 0 ] || failed+=("$setting")
  set -e
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "paper-settings: runs failed in: ${failed[*]} (see their tables)" >&2
  exit 1
fi
