#!/usr/bin/env bash
# Rebuilds a committed pre-trained encoder, data/encoders/ENCODER (issue 16). ENCODER is
# ddtp-multilingual (the default) or ddtp-wordnet-multilingual (the same plus WordNet's English noun
# glosses, for the settings with data/wordnet-supersense); configs/pretrain/ENCODER.toml is its recipe.
#   1. Debian bookworm's Packages and Translation-{en,fr,de,it,es} indexes, fetched into .cache/
#      when missing (scripts/data/fetch_debian_indexes.sh: Debian's own archive, through apt), and
#      for the WordNet encoder WordNet 3.0's data.noun from Debian's wordnet-base package, fetched
#      with `apt-get download` and unpacked into .cache/wordnet-base when it is not installed;
#   2. the corpus: every description of main whose source package is in the train split (and the
#      WordNet glosses of train-split synsets), checked to hold no dev or test text of any committed
#      dataset (scripts/data/build_pretrain_corpus.py);
#   3. `muki pretrain configs/pretrain/ENCODER.toml` into runs/encoders/ (a killed run resumes where
#      it stopped when this script is started again);
#   4. the encoder's files copied into data/encoders/ENCODER with a sha256 manifest.
# Needs a built muki (scripts/test.sh or scripts/quickstart.sh build it). Extra arguments go to
# `muki pretrain` (e.g. --set train.steps=100 for a try). About 15 minutes of pre-training on 2 idle cores.
#   scripts/pretrain-encoder.sh [ENCODER] [muki pretrain arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
encoder=ddtp-multilingual
case ${1:-} in ddtp-multilingual | ddtp-wordnet-multilingual) encoder=$1; shift ;; esac
lists=.cache/debian-apt/lists
if ! ls "$lists"/*_i18n_Translation-es > /dev/null 2>&1; then
  bash scripts/data/fetch_debian_indexes.sh --langs "en fr de it es" > /dev/null
fi
corpus=(--out .cache/pretrain-corpus)
if [ "$encoder" = ddtp-wordnet-multilingual ]; then
  wordnet=/usr/share/wordnet
  [ -f $wordnet/data.noun ] || wordnet=.cache/wordnet-base/usr/share/wordnet
  if [ ! -f $wordnet/data.noun ]; then
    mkdir -p .cache/wordnet-base
    (cd .cache && apt-get download wordnet-base)
    dpkg -x .cache/wordnet-base_*.deb .cache/wordnet-base
  fi
  corpus=(--out .cache/pretrain-corpus-wordnet --wordnet "$wordnet")
fi
python3 scripts/data/build_pretrain_corpus.py --lists "$lists" "${corpus[@]}"
build/bin/muki pretrain "configs/pretrain/$encoder.toml" "$@"
out=data/encoders/$encoder
mkdir -p "$out"
for f in config.toml vocab.txt encoder.pt encoder.pt.checksum mlm_head.pt mlm_head.pt.checksum pretrain_report.json; do
  cp "runs/encoders/$encoder/$f" "$out/$f"
done
(cd "$out" && sha256sum config.toml vocab.txt encoder.pt mlm_head.pt pretrain_report.json > manifest.sha256)
echo "encoder: $out"
cat "$out/manifest.sha256"
