#!/usr/bin/env bash
# Rebuilds the committed datasets into a temporary folder from freshly fetched Debian index files
# and compares them with the committed manifests (data/*/manifest.sha256).
#
# Usage: verify.sh [--no-fetch] [DATA_DIR]   (DATA_DIR default: <repo>/data)
# Exit 0 when every committed folder is reproduced byte for byte; 1 otherwise, with a message
# that says whether Debian's index (a point release) or the builder changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
fetch="--fetch"
data=""
for a in "$@"; do
  case "$a" in
    --no-fetch) fetch="" ;;
    *) data="$a" ;;
  esac
done
data="${data:-$repo/data}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$here/build_all.sh" $fetch "$tmp" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; echo "verify: rebuild FAILED" >&2; exit 1; }

# the source release named in a dataset README (Debian point release and InRelease date, or the
# wordnet-base version), and the sha256 of its source files (the provenance section's hashes)
release_of() {
  tr '\n' ' ' <"$1/README.md" | tr -s ' ' | grep -oE "point release [0-9.]+|dated [A-Z][a-z]{2}, [^.]+ UTC|wordnet-base\` version [^ ,]+" | tr -d '`' | tr '\n' ' ' | sed 's/ *$//'
}
index_of() { sed -n '1,/^## Format/p' "$1/README.md" | grep -oE '[0-9a-f]{64}' || true; }

status=0
for d in "$data"/*/; do
  d="${d%/}"; name="$(basename "$d")"
  [ -f "$d/manifest.sha256" ] || continue
  if [ ! -f "$tmp/$name/manifest.sha256" ]; then
    echo "verify: $name: not rebuilt by build_all.sh (skipped)"; continue
  fi
  if cmp -s "$d/manifest.sha256" "$tmp/$name/manifest.sha256"; then
    echo "verify: $name: OK, reproduced byte for byte ($(head -c 16 "$d/manifest.sha256")...)"
    continue
  fi
  status=1
  echo "verify: $name: DIFFERS from the committed manifest"
  diff <(sort -k2 "$d/manifest.sha256") <(sort -k2 "$tmp/$name/manifest.sha256") | sed 's/^/    /' || true
  if [ "$(index_of "$d")" != "$(index_of "$tmp/$name")" ]; then
    echo "    -> the source files changed: committed from $(release_of "$d"); now $(release_of "$tmp/$name")."
    echo "       Debian's point release (or the wordnet-base package) changed the texts. Results on the"
    echo "       committed folder stay valid for that release; to move on, run scripts/data/build_all.sh"
    echo "       and commit data/ (results then name the new content hash)."
  else
    echo "    -> the source files are the same ($(release_of "$d")), so the BUILDER changed: review"
    echo "       the diff of scripts/data/ before committing a rebuilt folder."
  fi
done
[ $status -eq 0 ] && echo "verify: all committed datasets reproduced" || echo "verify: differences found (see above)"
exit $status
