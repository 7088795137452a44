#!/usr/bin/env bash
# The README's main command: installs, builds, trains the quickstart teachers if missing, and
# measures MUKI's integrated supervision on the embedded dataset (Debian package descriptions).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset default > /dev/null
cmake --build --preset default -j "$(nproc)"

teachers=runs/quickstart/teachers
bash scripts/train-fasttext-teacher.sh data/ddtp-en/train.tsv games,sound,graphics,text "$teachers/media.bin"
bash scripts/train-fasttext-teacher.sh data/ddtp-en/train.tsv science,math,net,admin "$teachers/science.bin"

build/bin/muki validate configs/quickstart.toml
build/bin/muki analyze configs/quickstart.toml --uncertainty entropy,mc_dropout --integration max,weighted
