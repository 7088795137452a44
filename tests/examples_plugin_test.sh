#!/usr/bin/env bash
# Installs muki from the build tree to a temporary prefix and, for each example under examples/,
# builds it against that installed SDK alone (from a copy outside the source tree) and checks that
# the installed muki loads it. Then runs a small `muki run` that uses the third-party teacher
# (examples/lexicon_teacher, C++) and the plain-C uncertainty strategy (examples/c_strategy) on
# data/ddtp-en. Usage: examples_plugin_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"

# build_example NAME LIBRARY: configure + build examples/NAME out of tree; checks the compile
# line and the exported symbols of lib<LIBRARY>.so.
build_example() {
  local name=$1 library=$2
  cp -r "$source/examples/$name" "$work/$name"
  cmake -S "$work/$name" -B "$work/$name-build" -DCMAKE_PREFIX_PATH="$work/prefix" \
        -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > "$work/$name-configure.log"
  cmake --build "$work/$name-build" > "$work/$name-build.log"
  # Nothing from the source tree may be on the compile line.
  if grep -q "$source/sdk" "$work/$name-build/compile_commands.json"; then
    echo "FAIL: $name compiled against the source tree's SDK" >&2
    exit 1
  fi
  # The SDK's muki_add_plugin exports the entry point alone.
  local exported
  exported=$(nm -D --defined-only "$work/$name-build/lib$library.so" | awk '{print $3}')
  if [ "$exported" != "muki_plugin_library_entry" ]; then
    echo "FAIL: lib$library.so exports more than its entry point:" $exported >&2
    exit 1
  fi
}

build_example max_probability max_probability
build_example c_strategy top2_margin
build_example lexicon_teacher lexicon_teacher

# The C example links the C-only SDK target: no C++ runtime, no TOML library.
needed=$(readelf -d "$work/c_strategy-build/libtop2_margin.so" | awk '/NEEDED/ {print $5}' | tr -d '[]')
echo "libtop2_margin.so needs:" $needed
if grep -Eq "stdc\+\+|toml|muki" <<< "$needed"; then
  echo "FAIL: the C example links a C++ or TOML library" >&2
  exit 1
fi
# ... and no plugin built with the SDK's helpers needs a TOML library either (ABI 1.1 getters).
for lib in max_probability/libmax_probability.so lexicon_teacher/liblexicon_teacher.so; do
  if readelf -d "$work/${lib%%/*}-build/${lib##*/}" | grep -q "toml"; then
    echo "FAIL: ${lib##*/} needs a TOML library" >&2
    exit 1
  fi
done

out=$("$work/prefix/bin/muki" plugins --path "$work/max_probability-build" \
      --path "$work/c_strategy-build" --path "$work/lexicon_teacher-build")
echo "$out"
grep -q "uncertainty  max_probability      v1.0.0    ABI 1.2" <<< "$out"
grep -q "uncertainty  top2_margin          v1.0.0    ABI 1.2" <<< "$out"
grep -q "teacher      lexicon              v1.0.0    ABI 1.2" <<< "$out"
# The installed muki also finds its own plugins in <prefix>/lib/muki/plugins.
grep -q "uncertainty  mc_dropout" <<< "$out"
echo "PASS: out-of-tree plugins built against the installed SDK and loaded"

# A small experiment with both third-party plugins: two lexicon teachers on the quickstart's
# halves of ddtp-en, certainty by the C strategy's top-2 margin over 4 word-dropout passes.
cat > "$work/examples.toml" <<TOML
[experiment]
name = "examples"
seed = 1
threads = 2
deterministic = true
output_dir = "$work/runs/examples"

[plugins]
paths = ["$work/c_strategy-build", "$work/lexicon_teacher-build"]

[data]
transfer = { path = "$source/data/ddtp-en/train.tsv" }
dev = { path = "$source/data/ddtp-en/dev.tsv", label = "label" }
test = { path = "$source/data/ddtp-en/test.tsv", label = "label" }

[[teachers]]
name = "media"
adapter = "lexicon"
options = { data = "$source/data/ddtp-en/train.tsv", labels = ["games", "sound", "graphics", "text"] }

[[teachers]]
name = "science"
adapter = "lexicon"
options = { data = "$source/data/ddtp-en/train.tsv", labels = ["science", "math", "net", "admin"] }

[uncertainty]
strategy = "top2_margin"
options = { samples = 4 }

[integration]
strategy = "weighted"
options = { tau = 0.2, margin_reweighting = true }

[student]
model = { type = "bag_of_embeddings", hidden = 64, max_length = 128, dropout = 0.1 }
train = { epochs = 6, batch_size = 32, lr = 1e-2, warmup = 0.1, eval_every = 50, patience = 10 }
TOML
"$work/prefix/bin/muki" run "$work/examples.toml" > "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
python3 - "$work/runs/examples/summary.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
accuracy, selection = summary["test.accuracy"], summary["test.selection_accuracy"]
print(f"examples run: student test accuracy {accuracy:.4f}, teacher selection {selection:.4f}")
# 8 classes: chance is 0.125, and always picking the larger half's teacher selects ~0.63. A
# student that learned from the two lexicons must be far above chance.
if not (accuracy > 0.5 and selection > 0.5):
    sys.exit("FAIL: the examples' run learned nothing")
PY
echo "PASS: a muki run with the third-party teacher and the C strategy"
