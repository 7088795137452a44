#!/usr/bin/env bash
# Installs muki from the build tree to a temporary prefix, builds examples/max_probability
# against that installed SDK alone (from a copy outside the source tree), and checks that the
# installed `muki plugins` loads it. Usage: examples_plugin_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
cp -r "$source/examples/max_probability" "$work/example"
cmake -S "$work/example" -B "$work/example-build" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > "$work/configure.log"
cmake --build "$work/example-build" > "$work/build.log"

# Nothing from the source tree may be on the compile line.
if grep -q "$source/sdk" "$work/example-build/compile_commands.json"; then
  echo "FAIL: the example compiled against the source tree's SDK" >&2
  exit 1
fi

# The SDK's muki_add_plugin exports the entry point alone.
exported=$(nm -D --defined-only "$work/example-build/libmax_probability.so" | awk '{print $3}')
if [ "$exported" != "muki_plugin_library_entry" ]; then
  echo "FAIL: libmax_probability.so exports more than its entry point:" $exported >&2
  exit 1
fi

out=$("$work/prefix/bin/muki" plugins --path "$work/example-build")
echo "$out"
grep -q "uncertainty  max_probability      v1.0.0    ABI 1.0" <<< "$out"
# The installed muki also finds its own plugins in <prefix>/lib/muki/plugins.
grep -q "uncertainty  mc_dropout" <<< "$out"
echo "PASS: out-of-tree plugin built against the installed SDK and loaded"
