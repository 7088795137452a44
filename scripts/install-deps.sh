#!/usr/bin/env bash
# Installs every system package muki needs from Debian 12's repositories. Idempotent: packages
# already present are skipped, so the README's commands can call it every time.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-openmp   # without openblas libtorch falls back to the reference BLAS (~45x slower)
  libgloo-dev   # the headers c10d's ProcessGroupGloo needs (distributed runs, process_group.h)
  libboost-dev libboost-program-options-dev
  libtomlplusplus-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev   # the JSON muki writes and reads (summary.json, metrics.jsonl, reports)
  libgtest-dev libgmock-dev
  libdlpack-dev
  libsentencepiece-dev   # SentencePiece tokenizer: train + encode (core)
  libfasttext-dev fasttext   # fastText teacher adapter; the CLI trains the tests' models
  python3-torch   # TorchScript teacher tests: the fixture generator exports models like a third party
  gnuplot-nox     # the figures of each run's report
  chromium        # the report test renders report.html headless
  clang-14 libclang-rt-14-dev   # the fuzzers (scripts/fuzz.sh): libFuzzer and clang's sanitizer runtimes
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Tools that may come from elsewhere on the machine: Debian's packages only when absent.
command -v python3 > /dev/null || missing+=(python3)  # dataset builders and checks (stdlib only)
command -v npm > /dev/null || missing+=(nodejs npm)   # fetch-assets.sh: BERT vocab, lid.176 model
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends: otherwise Qt and Mesa come along with libtorch.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
