#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, and runs the whole suite.
# Safe to re-run; a warm re-run only rebuilds what changed (ccache).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/fetch-assets.sh   # BERT vocab.txt, lid.176.ftz into .cache/assets

cmake --preset default > /dev/null
cmake --build --preset default -j "$(nproc)"
ctest --preset default -j "$(nproc)"

# The torch-free half again under AddressSanitizer + UndefinedBehaviorSanitizer (CMakePresets.json).
cmake --preset asan > /dev/null
cmake --build --preset asan -j "$(nproc)"
ctest --preset asan -j "$(nproc)"

# Each libFuzzer fuzzer briefly (tests/fuzz; longer runs: bash scripts/fuzz.sh 600).
bash scripts/fuzz.sh 10
