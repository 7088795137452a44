#!/usr/bin/env bash
# Trains a fastText teacher on the examples of a muki TSV split (header: id group label text)
# whose label is in a given subset, the way the paper makes teachers: each an expert on its own
# labels. The model is what the `fasttext` teacher adapter loads.
#   train-fasttext-teacher.sh TRAIN.tsv "label1,label2,..." OUT.bin [extra fasttext args...]
# Skips the work when OUT.bin is newer than TRAIN.tsv and this script.
set -euo pipefail
train=$1
labels=$2
out=$3
shift 3
if [ -f "$out" ] && [ "$out" -nt "$train" ] && [ "$out" -nt "$0" ]; then
  echo "train-fasttext-teacher: $out is up to date"
  exit 0
fi
mkdir -p "$(dirname "$out")"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# fastText's format: __label__<label> <text>; the text column is the fourth.
awk -F'\t' -v labels="$labels" '
  BEGIN { n = split(labels, l, ","); for (i = 1; i <= n; i++) keep[l[i]] = 1 }
  NR == 1 { if ($3 != "label" || $4 != "text") { print "bad header in " FILENAME > "/dev/stderr"; exit 1 } next }
  ($3 in keep) { print "__label__" $3 " " $4; kept++ }
  END { if (kept == 0) { print "no example has one of the labels " labels > "/dev/stderr"; exit 1 } }
' "$train" > "$tmp"
echo "train-fasttext-teacher: $(wc -l < "$tmp") examples of {$labels} -> $out"
# Fixed seed and one thread: the same data gives the same model.
fasttext supervised -input "$tmp" -output "${out%.bin}" -epoch 50 -lr 1.0 -wordNgrams 2 -dim 50 \
  -thread 1 -seed 1 -verbose 0 "$@"
rm -f "${out%.bin}.vec"
