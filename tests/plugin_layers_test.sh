#!/usr/bin/env bash
# Plugins link core's model layer and what lies to its left, never the libraries to its right
# (core/CMakeLists.txt): no strong muki symbol those libraries define may be in a plugin binary. The
# binaries are checked rather than the link lines because a static library brings in exactly the
# code a plugin uses: a plugin that reaches the config, the run directory or the run carries it.
# usage: plugin_layers_test.sh MODEL_LIB "FORBIDDEN_LIB..." PLUGIN...
set -euo pipefail
model=$1 forbidden_libs=$2
shift 2

# Strong (T) symbols in muki's namespaces that a static library defines.
defined() { nm --defined-only "$@" | awk '$2 == "T" && $3 ~ /^_ZN4muki/ {print $3}' | sort -u; }
# Every symbol a plugin's symbol table holds, local (hidden) ones included.
symbols() { nm --defined-only "$1" | awk '{print $3}' | sort -u; }

# shellcheck disable=SC2086
forbidden=$(defined $forbidden_libs)
model_symbols=$(defined "$model")
if [ -z "$forbidden" ] || [ -z "$model_symbols" ]; then
  echo "no muki symbols in $forbidden_libs or $model: nothing to check against" >&2
  exit 1
fi

status=0 sees_model=0
for plugin in "$@"; do
  found=$(comm -12 <(symbols "$plugin") <(echo "$forbidden"))
  if [ -n "$found" ]; then
    echo "$plugin holds code of $forbidden_libs:" >&2
    echo "$found" | c++filt | head -5 >&2
    status=1
  fi
  [ -n "$(comm -12 <(symbols "$plugin") <(echo "$model_symbols"))" ] && sees_model=1
done
# A stripped plugin would pass the check above without proving anything: at least one plugin (the
# native teacher) must be seen to hold model code.
if [ "$sees_model" -eq 0 ]; then
  echo "no plugin holds a symbol of $model: are the plugins stripped?" >&2
  exit 1
fi
exit "$status"
