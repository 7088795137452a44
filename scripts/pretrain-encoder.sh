#!/usr/bin/env bash
# Rebuilds the committed pre-trained encoder data/encoders/ddtp-multilingual (issue 16):
#   1. Debian bookworm's Packages and Translation-{en,fr,de,it,es} indexes, fetched into .cache/
#      when missing (scripts/data/fetch_debian_indexes.sh: Debian's own archive, through apt);
#   2. the corpus: every description of main whose source package is in the train split, checked
#      to hold no dev or test text of any committed dataset (scripts/data/build_pretrain_corpus.py);
#   3. `muki pretrain configs/pretrain/ddtp-multilingual.toml` into runs/encoders/ (a killed run
#      resumes where it stopped when this script is started again);
#   4. the encoder's files copied into data/encoders/ddtp-multilingual with a sha256 manifest.
# Needs a built muki (scripts/test.sh or scripts/quickstart.sh build it). Extra arguments go to
# `muki pretrain` (e.g. --set train.steps=100 for a try). About 15 minutes of pre-training on 2 idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."
lists=.cache/debian-apt/lists
if ! ls "$lists"/*_i18n_Translation-es > /dev/null 2>&1; then
  bash scripts/data/fetch_debian_indexes.sh --langs "en fr de it es" > /dev/null
fi
python3 scripts/data/build_pretrain_corpus.py --lists "$lists"
build/bin/muki pretrain configs/pretrain/ddtp-multilingual.toml "$@"
out=data/encoders/ddtp-multilingual
mkdir -p "$out"
for f in config.toml vocab.txt encoder.pt encoder.pt.checksum mlm_head.pt mlm_head.pt.checksum pretrain_report.json; do
  cp "runs/encoders/ddtp-multilingual/$f" "$out/$f"
done
(cd "$out" && sha256sum config.toml vocab.txt encoder.pt mlm_head.pt pretrain_report.json > manifest.sha256)
echo "encoder: $out"
cat "$out/manifest.sha256"
