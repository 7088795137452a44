#!/usr/bin/env bash
# Rebuilds muki's real datasets into OUT (default: <repo>/data) and checks them.
#
# Usage: build_all.sh [--fetch] [--extra] [OUT]
#   --fetch  re-download the Debian index files (otherwise the cached ones in .cache/ are used,
#            and fetched only when absent)
#   --extra  also build the on-demand sets that are not committed: ddtp-it, ddtp-de, ddtp-da,
#            ddtp-en-all (every topical section with >= 100 examples) and wordnet-supersense-full
#
# The committed sets are: ddtp-en, ddtp-fr, wordnet-supersense.
# Needs: /usr/bin/python3, apt-get, lz4 (apt-get install lz4), and for WordNet the Debian package
# wordnet-base (apt-get install --no-install-recommends wordnet-base).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
fetch=0
extra=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --fetch) fetch=1 ;;
    --extra) extra=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "build_all: unknown option $1" >&2; exit 2 ;;
    *) out="$1" ;;
  esac
  shift
done
out="${out:-$repo/data}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
# the READMEs record the command with paths relative to the repository when OUT is inside it
cd "$repo"
rel() { case "$1" in "$repo"/*) echo "${1#"$repo"/}" ;; *) echo "$1" ;; esac; }
o="$(rel "$out")"

if ! command -v lz4cat >/dev/null 2>&1; then
  echo "build_all: lz4cat missing (apt-get install lz4); continuing, it is only needed for lz4 lists" >&2
fi
if [ ! -r /usr/share/wordnet/data.noun ]; then
  echo "build_all: installing wordnet-base" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends wordnet-base >&2
fi

langs="en fr it de da"
if [ "$fetch" -eq 1 ] || ! ls "$repo/.cache/debian-apt/lists/"*_Packages >/dev/null 2>&1; then
  "$here/fetch_debian_indexes.sh" --langs "$langs" >/dev/null
fi

py=/usr/bin/python3
t0=$(date +%s)
$py scripts/data/build_debian_descriptions.py --lang en --out "$o/ddtp-en"
$py scripts/data/build_debian_descriptions.py --lang fr --out "$o/ddtp-fr"
$py scripts/data/build_wordnet_supersense.py --max-per-class 1500 --out "$o/wordnet-supersense"
dirs=("$o/ddtp-en" "$o/ddtp-fr" "$o/wordnet-supersense")
if [ "$extra" -eq 1 ]; then
  for l in it de da; do
    $py scripts/data/build_debian_descriptions.py --lang "$l" --out "$o/ddtp-$l"
    dirs+=("$o/ddtp-$l")
  done
  $py scripts/data/build_debian_descriptions.py --lang en --sections all --min-per-class 100 --out "$o/ddtp-en-all"
  $py scripts/data/build_wordnet_supersense.py --out "$o/wordnet-supersense-full"
  dirs+=("$o/ddtp-en-all" "$o/wordnet-supersense-full")
fi
echo "build_all: built in $(( $(date +%s) - t0 ))s" >&2
$py scripts/data/check_splits.py --across "${dirs[@]}"
du -sh "${dirs[@]}"
