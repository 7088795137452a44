#!/usr/bin/env bash
# Self-test of check_splits.py: broken fixture folders must fail with a message naming the problem,
# a good one must pass. Usage: test_check_splits.sh  (exit 0 = all assertions hold)
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
check="$here/check_splits.py"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0

# make_dataset DIR TRAIN_ROWS DEV_ROWS TEST_ROWS   (rows separated by '|', fields by ',')
make_dataset() {
  local d="$1"; mkdir -p "$d"
  printf 'games\nscience\n' > "$d/labels.txt"
  local s rows
  for s in train dev test; do
    case $s in train) rows="$2" ;; dev) rows="$3" ;; test) rows="$4" ;; esac
    { printf 'id\tgroup\tlabel\ttext\n'
      [ -n "$rows" ] && printf '%s\n' "$rows" | tr '|,' '\n\t'; } > "$d/$s.tsv"
  done
}

expect_fail() {  # NAME DIR PATTERN
  local out
  if out="$(/usr/bin/python3 "$check" "$2" 2>&1)"; then
    echo "FAIL: $1: check_splits.py passed a broken folder"; failures=$((failures + 1))
  elif ! grep -qE "$3" <<<"$out"; then
    echo "FAIL: $1: message does not match /$3/:"; echo "$out"; failures=$((failures + 1))
  else
    echo "ok: $1 -> $(head -n1 <<<"$out")"
  fi
}

make_dataset "$tmp/good" "a,srcA,games,a fine game|b,srcB,science,a telescope" "c,srcC,games,cards" "d,srcD,science,stars"
make_dataset "$tmp/leak" "a,srcA,games,a fine game|b,srcB,science,a telescope" "c,srcA,games,cards" "d,srcD,science,stars"
make_dataset "$tmp/label" "a,srcA,games,a fine game|b,srcB,sound,a synth" "c,srcC,games,cards" "d,srcD,science,stars"
make_dataset "$tmp/fields" "a,srcA,games,a fine game|b,srcB,science" "c,srcC,games,cards" "d,srcD,science,stars"
make_dataset "$tmp/empty" "a,srcA,games,a fine game|b,srcB,science, " "c,srcC,games,cards" "d,srcD,science,stars"
make_dataset "$tmp/header" "a,srcA,games,x" "c,srcC,games,cards" "d,srcD,science,stars"
sed -i '1s/.*/id\tlabel\ttext/' "$tmp/header/dev.tsv"
make_dataset "$tmp/utf8" "a,srcA,games,x" "c,srcC,games,cards" "d,srcD,science,stars"
printf 'e\tsrcE\tgames\tbad \xff byte\n' >> "$tmp/utf8/test.tsv"

if out="$(/usr/bin/python3 "$check" "$tmp/good" 2>&1)" && grep -q '^OK ' <<<"$out"; then
  echo "ok: good folder passes -> $out"
else
  echo "FAIL: good folder rejected:"; echo "$out"; failures=$((failures + 1))
fi
expect_fail "leaking group" "$tmp/leak" "group 'srcA' appears in two splits: .*train.tsv.* and .*dev.tsv"
expect_fail "unknown label" "$tmp/label" "label 'sound' not in labels.txt"
expect_fail "bad field count" "$tmp/fields" "train.tsv:3: 3 fields, expected 4"
expect_fail "empty text" "$tmp/empty" "train.tsv:3: empty text"
expect_fail "bad header" "$tmp/header" "dev.tsv:1: bad header"
expect_fail "invalid UTF-8" "$tmp/utf8" "test.tsv:3: invalid UTF-8"

# --across: the same group in different splits of two folders (e.g. English vs French set)
make_dataset "$tmp/other" "z,srcZ,games,x" "c,srcC,games,cartes" "a,srcA,science,jeu"
if out="$(/usr/bin/python3 "$check" --across "$tmp/good" "$tmp/other" 2>&1)"; then
  echo "FAIL: --across passed a group split differently in two folders"; failures=$((failures + 1))
elif grep -qE "group 'srcA' is in test.tsv of .*other but in train.tsv of .*good" <<<"$out"; then
  echo "ok: --across -> $(grep -m1 FAIL <<<"$out")"
else
  echo "FAIL: --across: unexpected message:"; echo "$out"; failures=$((failures + 1))
fi

if [ "$failures" -ne 0 ]; then echo "test_check_splits: $failures failure(s)"; exit 1; fi
echo "test_check_splits: all passed"
