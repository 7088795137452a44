#!/usr/bin/env bash
# Fetches Debian bookworm's main/binary-amd64 Packages index and the Translation-<lang> files into a
# PRIVATE apt state folder. The system's apt configuration and lists are never read for writing
# nor modified: apt runs with its own APT_CONFIG, an empty parts folder, its own sources file,
# lists folder and cache folder.
#
# Usage: fetch_debian_indexes.sh [--cache DIR] [--mirror URI] [--suite SUITE] [--langs "en fr it de"]
#   --cache   where the private apt tree lives (default: <repo>/.cache/debian-apt)
#   --mirror  archive URI; by default the first Debian URI found in the system's own apt sources
#             (so this script never hard-codes a host)
#   --suite   default bookworm
#   --langs   default "en fr it de da"
# Prints the path of the lists folder on its last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="$repo/.cache/debian-apt"
mirror=""
suite="bookworm"
langs="en fr it de da"

while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --langs) langs="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "fetch_debian_indexes: unknown option $1" >&2; exit 2 ;;
  esac
done

if [ -z "$mirror" ]; then
  # Take the archive URI from the system's own configuration (deb822 .sources or one-line .list),
  # skipping the security archive.
  mirror="$( { grep -hsE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
                 | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n';
               grep -hsE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                 | sed -E 's/\[[^]]*\]//' | awk '{print $2}'; } \
             | grep -E '/debian/?$' | grep -v security | head -n1 || true)"
fi
if [ -z "$mirror" ]; then
  echo "fetch_debian_indexes: no Debian archive URI found in /etc/apt; pass --mirror URI" >&2
  exit 1
fi

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "fetch_debian_indexes: $keyring missing (apt-get install debian-archive-keyring)" >&2; exit 1; }

mkdir -p "$cache/etc/parts.d" "$cache/etc/preferences.d" "$cache/lists/partial" "$cache/cache/archives/partial" "$cache/state"
echo "deb [signed-by=$keyring arch=amd64] $mirror $suite main" > "$cache/etc/sources.list"

lang_list=""
for l in $langs; do lang_list="$lang_list \"$l\";"; done

cat > "$cache/etc/apt.conf" <<CONF
// private apt configuration written by scripts/data/fetch_debian_indexes.sh
Dir::Etc::main "$cache/etc/apt.conf";
Dir::Etc::parts "$cache/etc/parts.d";
Dir::Etc::sourcelist "$cache/etc/sources.list";
Dir::Etc::sourceparts "-";
Dir::Etc::preferences "$cache/etc/preferences";
Dir::Etc::preferencesparts "$cache/etc/preferences.d";
Dir::State "$cache/state";
Dir::State::Lists "$cache/lists";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$cache/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
#clear Acquire::Languages;
Acquire::Languages { $lang_list };
Acquire::GzipIndexes "false";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
CONF

echo "fetch_debian_indexes: $mirror $suite main amd64, languages: $langs -> $cache/lists" >&2
APT_CONFIG="$cache/etc/apt.conf" apt-get update -q -o Debug::NoLocking=0 >&2

echo "$cache/lists"
