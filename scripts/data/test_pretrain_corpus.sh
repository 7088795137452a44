#!/usr/bin/env bash
# Self-test of build_pretrain_corpus.py on a tiny fake lists folder (no network, no real index files):
# a dev-split package (taken from data/ddtp-en/dev.tsv) and a binary sharing its description must be
# left out, train-split texts kept with <pkg> masking, the check mode must pass on the result and
# fail on a corpus with a real data/ddtp-en/test.tsv line appended.
# Usage: test_pretrain_corpus.sh  (exit 0 = all assertions hold)
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$here/build_pretrain_corpus.py"
py=/usr/bin/python3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
ok() { echo "ok: $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }

# names whose split / held-out bucket the assertions rely on (a salt change must fail loudly here)
names_ok="$(cd "$here" && $py -B -c '
import datasets_common as dc, build_pretrain_corpus as b
need = {"fakegame": "train", "faketool": "train", "fakeshort": "train", "zzfake": "train", "fakeshared": "train",
        "faketwin-a": "train", "faketwin-b": "train", "fakeheld14": "train"}
bad = [n for n, s in need.items() if dc.split_of(n) != s]
bad += [n for n in ("fakegame", "faketool") if b.heldout_bucket(n) < 20]
bad += [n for n in ("fakeheld14",) if b.heldout_bucket(n) >= 20]
print(" ".join(bad) or "yes")')"
[ "$names_ok" = yes ] || { echo "FAIL: fixture names changed split/held-out bucket: $names_ok"; exit 1; }

# a dev-split package of the committed English set, and a real test text
IFS=$'\t' read -r dev_id dev_group _ _ < <(sed -n 2p "$repo/data/ddtp-en/dev.tsv")
test_text="$(sed -n 2p "$repo/data/ddtp-en/test.tsv" | cut -f4)"
[ -n "$dev_id" ] && [ -n "$test_text" ] || { echo "FAIL: cannot read data/ddtp-en/dev.tsv or test.tsv"; exit 1; }

lists="$tmp/lists"
mkdir -p "$lists"
cat > "$lists/fake_dists_bookworm_main_binary-amd64_Packages" <<EOF
Package: $dev_id
Source: $dev_group (1.0-1)
Section: admin
Description: held back
Description-md5: 00000000000000000000000000000001

Package: fakeshared-bin
Source: fakeshared
Description: shares the description of a dev package
Description-md5: 00000000000000000000000000000001

Package: fakegame
Source: fakegame (2.0-1)
Description: a puzzle game
Description-md5: 00000000000000000000000000000002

Package: fakegame-extra
Source: fakegame
Description: a puzzle game
Description-md5: 00000000000000000000000000000002

Package: faketool
Description: a tool
Description-md5: 00000000000000000000000000000003

Package: fakeshort
Description: short
Description-md5: 00000000000000000000000000000004

Package: zzfake
Description: copy of a test text
Description-md5: 00000000000000000000000000000005

Package: faketwin-a
Description: twin a
Description-md5: 00000000000000000000000000000006

Package: faketwin-b
Description: twin b
Description-md5: 00000000000000000000000000000007

Package: fakeheld14
Description: held out
Description-md5: 00000000000000000000000000000008
EOF
cat > "$lists/fake_dists_bookworm_main_i18n_Translation-en" <<EOF
Package: $dev_id
Description-md5: 00000000000000000000000000000001
Description-en: held back
 DEVSECRET zebra words of a package in the dev split must never reach the corpus.

Package: fakegame
Description-md5: 00000000000000000000000000000002
Description-en: a puzzle game
 FakeGame is a puzzle game for the whole family.
 .
 Start it with fakegame --level 3 or fakegame-extra, GAMEMARK.

Package: faketool
Description-md5: 00000000000000000000000000000003
Description-en: a tool
 TOOLMARK converts files between many formats quickly.

Package: fakeshort
Description-md5: 00000000000000000000000000000004
Description-en: short
 Too short text.

Package: zzfake
Description-md5: 00000000000000000000000000000005
Description-en: copy of a test text
 $test_text

Package: faketwin-a
Description-md5: 00000000000000000000000000000006
Description-en: twin a
 TWINMARK the same long text for two different packages.

Package: faketwin-b
Description-md5: 00000000000000000000000000000007
Description-en: twin b
 TWINMARK the same long text for two different packages.

Package: fakeheld14
Description-md5: 00000000000000000000000000000008
Description-en: held out
 HELDMARK this text is in the held-out slice for evaluation.

Package: fakenone
Description-md5: 00000000000000000000000000000009
Description-en: not in Packages
 NONEMARK a description whose package is not in the Packages index.
EOF
cat > "$lists/fake_dists_bookworm_main_i18n_Translation-fr" <<EOF
Package: $dev_id
Description-md5: 00000000000000000000000000000001
Description-fr: retenu
 DEVSECRET zèbre : le texte d'un paquet du jeu de développement.

Package: fakegame
Description-md5: 00000000000000000000000000000002
Description-fr: un jeu de réflexion
 FakeGame est un jeu de réflexion pour toute la famille, JEUMARK.

Package: faketool
Description-md5: 00000000000000000000000000000003
Description-fr: un outil
 TOOLMARK converts files between many formats quickly.
EOF

out="$tmp/out"
if ! $py -B "$build" --lists "$lists" --langs "en fr" --out "$out" >"$tmp/build.log" 2>&1; then
  fail "build on the fake lists failed:"; cat "$tmp/build.log"
else
  ok "build on the fake lists -> $(tail -n1 "$tmp/build.log" | cut -c1-90)..."
fi
corpus="$out/corpus.txt"
absent() { if grep -qF -- "$1" "$out/corpus.txt" "$out/heldout.txt"; then fail "$2"; else ok "$3"; fi; }
absent DEVSECRET "text of dev-split package $dev_id is in the corpus" "dev-split package $dev_id ($dev_group) left out, in en and fr"
absent "$test_text" "a real test.tsv text (carried by train package zzfake) is in the corpus" "text equal to a test.tsv text left out"
absent "Too short" "a text of fewer than 5 words is in the corpus" "text of fewer than 5 words left out"
absent NONEMARK "a description without Packages stanza is in the corpus" "description without Packages stanza left out"
want="<pkg> is a puzzle game for the whole family. Start it with <pkg> --level 3 or <pkg>, GAMEMARK."
if grep -qxF -- "$want" "$corpus"; then ok "train text present, synopsis dropped, ' .' joined, names masked: $want"
else fail "expected line missing: $want"; cat "$corpus"; fi
grep -qxF -- "<pkg> est un jeu de réflexion pour toute la famille, JEUMARK." "$corpus" \
  && ok "French text present and masked" || fail "French fakegame text missing"
n="$(grep -cF GAMEMARK "$corpus")"; [ "$n" = 1 ] && ok "description shared by two binaries counted once" \
  || fail "GAMEMARK appears $n times"
n="$(grep -cF TOOLMARK "$corpus")"; [ "$n" = 1 ] && ok "untranslated French copy dropped" || fail "TOOLMARK appears $n times"
n="$(grep -cF TWINMARK "$corpus")"; [ "$n" = 1 ] && ok "identical texts of two packages kept once" || fail "TWINMARK appears $n times"
if grep -qF HELDMARK "$out/heldout.txt" && ! grep -qF HELDMARK "$corpus"; then ok "held-out source in heldout.txt only"
else fail "fakeheld14 not (only) in heldout.txt"; fi
[ "$(head -n1 "$corpus" | cut -c1-5)" = "<pkg>" ] && [ "$(sed -n 1p "$out/corpus.meta.tsv")" = $'lang\tpackages\tsources\tmd5' ] \
  && [ "$(sed -n 2p "$out/corpus.meta.tsv" | cut -f1-3)" = $'en\tfakegame,fakegame-extra\tfakegame' ] \
  && ok "sorted by language then package; meta row names the carriers" || fail "order/meta unexpected"
ex="$($py -c 'import json,sys; e=json.load(open(sys.argv[1]))["excluded_totals"]; print(" ".join(f"{k}={v}" for k,v in e.items()))' "$out/manifest.json")"
[ "$ex" = "not_in_packages=1 dev_test_split=2 committed_dev_test=0 untranslated_copy=1 too_short=1 dev_test_text=1 dev_test_near_text=0 duplicate_text=1" ] \
  && ok "manifest exclusion counts: $ex" || fail "manifest exclusion counts: $ex"

$py -B "$build" --lists "$lists" --langs "fr,en" --out "$tmp/out2" >/dev/null 2>&1
cmp -s "$corpus" "$tmp/out2/corpus.txt" && cmp -s "$out/heldout.txt" "$tmp/out2/heldout.txt" \
  && ok "rebuild gives identical bytes" || fail "rebuild differs"

if o="$($py -B "$build" --check --out "$out" 2>&1)"; then ok "check passes: $(cut -c1-60 <<<"$o")..."
else fail "check rejected a clean corpus:"; echo "$o"; fi

# the no-test-text-in-corpus check must catch a real test line appended to a built corpus (OUT), and
# name the line and the test file (TESTFILE, whose line 2 it is)
check_catches_leak() {  # OUT TEXT TESTFILE
  cp -r "$1" "$1-leak"
  printf '%s\n' "$2" >> "$1-leak/corpus.txt"
  local line o
  line="$(wc -l < "$1-leak/corpus.txt")"
  if o="$($py -B "$build" --check --out "$1-leak" 2>&1)"; then
    fail "check passed a corpus with a line of $3 appended"
  elif grep -qE "corpus.txt:$line: equals the dev/test text of $3:2 " <<<"$o"; then
    ok "check fails on an appended line of $3 -> $(grep -m1 "corpus.txt:$line" <<<"$o" | cut -c1-120)"
  else fail "check failed without naming line $line as $3:2:"; echo "$o"; fi
}
check_catches_leak "$out" "$test_text" data/ddtp-en/test.tsv

# belt and braces: a group of a committed dev/test file is left out even when its split hash says train
mkdir -p "$tmp/fakeset"
printf 'id\tgroup\tlabel\ttext\n' > "$tmp/fakeset/test.tsv"
printf 'id\tgroup\tlabel\ttext\nsomebin\tfaketool\tutils\tan unrelated text of the committed dev split\n' > "$tmp/fakeset/dev.tsv"
if $py -B "$build" --lists "$lists" --langs "en fr" --out "$tmp/out4" --devtest "$repo/data/ddtp-en" "$tmp/fakeset" \
     >"$tmp/out4.log" 2>&1 && ! grep -qF TOOLMARK "$tmp/out4/corpus.txt" \
   && grep -qF '"committed_dev_test": 2' "$tmp/out4/manifest.json" \
   && ! $py -B "$build" --check --out "$out" --devtest "$repo/data/ddtp-en" "$tmp/fakeset" >/dev/null 2>&1; then
  ok "committed dev/test group faketool left out (en and fr), and the check flags it in the earlier corpus"
else fail "committed dev/test group not handled:"; cat "$tmp/out4.log"; fi

# a missing index file is named, with the fetch command
if o="$($py -B "$build" --lists "$lists" --langs "en fr es" --out "$tmp/out3" 2>&1)"; then
  fail "build passed without Translation-es"
elif grep -qF "Translation-es" <<<"$o" && grep -qF 'fetch_debian_indexes.sh --langs "en fr es"' <<<"$o"; then
  ok "missing index named: $(cut -c1-110 <<<"$o")..."
else fail "unclear message for a missing index:"; echo "$o"; fi

# --wordnet: WordNet noun glosses join the corpus only when the synset and its first hypernym are
# both in the train split and the gloss is no dev/test text of data/wordnet-supersense
names_ok="$(cd "$here" && $py -B -c '
import datasets_common as dc, build_pretrain_corpus as b
bad = [o for o in ("n10000001", "n10000002", "n10000004") if dc.split_of(o) != "train" or b.heldout_bucket(o) < 20]
bad += [o for o in ("n10000005",) if dc.split_of(o) != "dev"]
print(" ".join(bad) or "yes")')"
[ "$names_ok" = yes ] || { echo "FAIL: WordNet fixture offsets changed split/held-out bucket: $names_ok"; exit 1; }
IFS=$'\t' read -r wn_dev_id wn_dev_group _ _ < <(sed -n 2p "$repo/data/wordnet-supersense/dev.tsv")
wn_test_text="$(sed -n 2p "$repo/data/wordnet-supersense/test.tsv" | cut -f4)"
mkdir -p "$tmp/wordnet"
cat > "$tmp/wordnet/data.noun" <<WORDNET
  1 This software and database is being provided to you, the LICENSEE, by a licence header line
10000001 03 n 01 entity 0 000 | that which is perceived or known or inferred to have its own distinct existence
10000002 05 n 02 pack_animal 0 sumpter 0 001 @ 10000001 n 0000 | WNMARK a pack animal (such as a mule) used to carry loads; "pack animals and sumpters"
10000003 05 n 01 grazer 0 001 @ 10000005 n 0000 | WNDEVHYPER an animal whose hypernym is in the dev split by the hash
${wn_dev_id#n} 05 n 01 dev_animal 0 001 @ ${wn_dev_group#n} n 0000 | WNDEVSECRET the gloss of a synset of the committed dev split
10000004 05 n 01 testlike 0 001 @ 10000001 n 0000 | $wn_test_text
10000006 05 n 01 tiny 0 001 @ 10000001 n 0000 | WNSHORT too short
WORDNET
if $py -B "$build" --lists "$lists" --langs "en fr" --wordnet "$tmp/wordnet" --out "$tmp/wn" >"$tmp/wn.log" 2>&1; then
  ok "build with --wordnet -> $(tail -n1 "$tmp/wn.log" | cut -c1-90)..."
else fail "build with --wordnet failed:"; cat "$tmp/wn.log"; fi
want='WNMARK a <lemma> (such as a mule) used to carry loads; "<lemma> and <lemma>"'
grep -qxF -- "$want" "$tmp/wn/corpus.txt" && ok "train gloss kept with its lemmas masked: $want" \
  || { fail "expected gloss missing: $want"; cat "$tmp/wn/corpus.txt"; }
grep -qF $'en-wn\tn10000002\tn10000001\twordnet' "$tmp/wn/corpus.meta.tsv" \
  && ok "its meta row names the synset and its hypernym" || fail "meta row of n10000002 missing"
for mark in WNDEVHYPER WNDEVSECRET WNSHORT "$wn_test_text"; do
  grep -qF -- "$mark" "$tmp/wn/corpus.txt" "$tmp/wn/heldout.txt" && fail "gloss '$mark' reached the corpus"
done
ex="$($py -c 'import json,sys; e=json.load(open(sys.argv[1]))["excluded"]["en-wn"]; print(" ".join(f"{k}={v}" for k,v in e.items() if v))' "$tmp/wn/manifest.json")"
[ "$ex" = "dev_test_split=2 too_short=1 dev_test_text=1" ] \
  && ok "WordNet glosses of dev-split synsets and families, test texts and short glosses left out: $ex" \
  || fail "WordNet exclusion counts: $ex"
cmp -s "$corpus" <(grep -v '^WNMARK\|existence$' "$tmp/wn/corpus.txt") \
  && ok "--wordnet adds the glosses and leaves the Debian texts as they were" || fail "--wordnet changed the Debian texts"
# without --devtest: the check learns from the corpus's manifest that it holds glosses
check_catches_leak "$tmp/wn" "$wn_test_text" data/wordnet-supersense/test.tsv

if [ "$failures" -ne 0 ]; then echo "test_pretrain_corpus: $failures failure(s)"; exit 1; fi
echo "test_pretrain_corpus: all passed"
