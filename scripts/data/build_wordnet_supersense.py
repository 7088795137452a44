#!/usr/bin/python3
"""Builds a gloss -> supersense (WordNet lexicographer file) dataset from Debian's wordnet-base.

Source: /usr/share/wordnet/data.noun (WordNet 3.0, Debian package wordnet-base). One synset per
line: `offset lex_filenum ss_type w_cnt word lex_id ... p_cnt pointers... | gloss`; lines that
start with two spaces are the licence header. The class is the name of lex_filenum, read from
lexnames(5WN) (/usr/share/man/man5/lexnames.5WN.gz, shipped by wordnet-base) and checked against
the table below.

Text = the gloss only (definition and usage examples after " | "), with every occurrence of the
synset's own lemmas (whole phrase, each word of a multi-word lemma of 3+ letters that is not a
stop word, and their -s/-es plurals; case-insensitive) replaced by <lemma>.
Group = the synset's first hypernym (so that sibling synsets, whose glosses are often templates
such as "a genus of ...", share a split); a synset without a hypernym, or whose hypernym has more
than --max-group hyponyms in the set, is its own group.
Split = the same salted hash of the group as the Debian builder (80/10/10).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import datasets_common as dc  # noqa: E402

DEFAULT_CLASSES = ["noun.animal", "noun.plant", "noun.food", "noun.person", "noun.artifact",
                   "noun.location", "noun.body", "noun.substance"]
# lexnames(5WN) of WordNet 3.0, used to check the man page (or when it is absent)
KNOWN = {3: "noun.Tops", 4: "noun.act", 5: "noun.animal", 6: "noun.artifact", 7: "noun.attribute",
         8: "noun.body", 9: "noun.cognition", 10: "noun.communication", 11: "noun.event",
         12: "noun.feeling", 13: "noun.food", 14: "noun.group", 15: "noun.location", 16: "noun.motive",
         17: "noun.object", 18: "noun.person", 19: "noun.phenomenon", 20: "noun.plant",
         21: "noun.possession", 22: "noun.process", 23: "noun.quantity", 24: "noun.relation",
         25: "noun.shape", 26: "noun.state", 27: "noun.substance", 28: "noun.time"}
STOP = {"the", "and", "for", "with", "from", "not", "any", "all", "one", "two", "its", "his", "her",
        "who", "that", "this", "are", "was", "has", "out", "off", "per", "via", "new", "old", "of",
        "in", "on", "at", "to", "by", "or", "an", "a"}
MASK = "<lemma>"


def lexnames(path: str) -> dict[int, str]:
    names = {}
    if os.path.exists(path):
        for line in gzip.open(path, "rt", encoding="utf-8", errors="replace"):
            m = re.match(r"^(\d\d)\s+([a-z]+\.[A-Za-z]+)\s", line)
            if m:
                names[int(m.group(1))] = m.group(2)
    return names


def mask_lemmas(gloss: str, lemmas: list[str]) -> tuple[str, int]:
    terms = set()
    for lem in lemmas:
        phrase = re.sub(r"\(.*?\)$", "", lem).replace("_", " ").strip()
        terms.add(phrase)
        words = re.split(r"[\s\-]+", phrase)
        if len(words) > 1:
            terms.update(w for w in words if len(w) >= 3 and w.lower() not in STOP)
    n = 0
    for t in sorted(terms, key=len, reverse=True):
        if not t:
            continue
        core = re.escape(t).replace(r"\ ", r"[\s\-]+")
        pat = re.compile(r"(?<![\w])" + core + r"(?:s|es)?(?![\w])", re.IGNORECASE)
        gloss, k = pat.subn(MASK, gloss)
        n += k
    return gloss, n


def synsets(data: str):
    """The synsets of a WordNet data.<pos> file's text: (offset, lex_filenum, lemmas, first hypernym
    offset or None, gloss) per synset line, in file order; the licence header is skipped."""
    for line in data.split("\n"):
        if not line or line.startswith("  "):
            continue
        head, sep, gloss = line.partition(" | ")
        if not sep:
            continue
        f = head.split()
        w_cnt = int(f[3], 16)
        lemmas = [f[4 + 2 * i] for i in range(w_cnt)]
        p_at = 4 + 2 * w_cnt
        hyper = None
        for i in range(int(f[p_at])):
            if f[p_at + 1 + 4 * i] in ("@", "@i"):
                hyper = f[p_at + 2 + 4 * i]
                break
        yield f[0], int(f[1]), lemmas, hyper, gloss


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", default=",".join(DEFAULT_CLASSES), help="comma-separated lexicographer files")
    ap.add_argument("--wordnet-dir", default="/usr/share/wordnet")
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-chars", type=int, default=20, help="minimum gloss length after masking")
    ap.add_argument("--max-per-class", type=int, default=0,
                    help="keep at most N synsets per class (0 = all), chosen by a salted hash of the "
                         "synset id, so the choice is deterministic")
    ap.add_argument("--max-group", type=int, default=50,
                    help="hypernym families larger than this are split into single synsets")
    args = ap.parse_args(argv[1:])
    t0 = time.time()

    data_path = os.path.join(args.wordnet_dir, "data.noun")
    if not os.path.exists(data_path):
        print(f"build_wordnet_supersense: {data_path} missing; install it with\n"
              f"  apt-get install --no-install-recommends wordnet-base", file=sys.stderr)
        return 1
    names = lexnames("/usr/share/man/man5/lexnames.5WN.gz")
    for k, v in KNOWN.items():
        if k in names and names[k] != v:
            raise SystemExit(f"lexnames mismatch for {k:02d}: man page {names[k]} vs expected {v}")
    names_src = "lexnames(5WN) man page shipped by wordnet-base" if names else "built-in WordNet 3.0 table"
    names = names or KNOWN
    wanted = [c.strip() for c in args.classes.split(",") if c.strip()]
    by_name = {v: k for k, v in names.items()}
    for c in wanted:
        if c not in by_name:
            raise SystemExit(f"unknown lexicographer file {c}")
    wanted_nums = {by_name[c]: c for c in wanted}

    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "wordnet-base"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
    raw = open(data_path, "rb").read()
    file_sha = hashlib.sha256(raw).hexdigest()
    file_md5 = hashlib.md5(raw).hexdigest()

    rows = []
    stats = {"synsets": 0, "other_class": 0, "short": 0, "dup": 0}
    seen_text = set()
    masked = 0
    for offset, lex, lemmas, hyper, gloss in synsets(raw.decode("utf-8")):
        stats["synsets"] += 1
        if lex not in wanted_nums:
            stats["other_class"] += 1
            continue
        text, k = mask_lemmas(dc.one_line(gloss), lemmas)
        masked += k > 0
        if len(text) < args.min_chars:
            stats["short"] += 1
            continue
        if text.lower() in seen_text:
            stats["dup"] += 1
            continue
        seen_text.add(text.lower())
        rows.append([f"n{offset}", f"n{hyper or offset}", wanted_nums[lex], text])

    # huge flat families (e.g. the 600+ instances of "city") would put a whole class's share into
    # one split: their members become their own groups
    fam_size: dict[str, int] = {}
    for r in rows:
        fam_size[r[1]] = fam_size.get(r[1], 0) + 1
    big = {g for g, n in fam_size.items() if n > args.max_group}
    n_big_members = 0
    for r in rows:
        if r[1] in big:
            r[1] = r[0]
            n_big_members += 1

    if args.max_per_class > 0:
        def rank(r):
            return (hashlib.sha256(f"{dc.SPLIT_SALT}:pick:{r[0]}".encode()).hexdigest(), r[0])
        kept = []
        for c in wanted:
            cls = sorted((r for r in rows if r[2] == c), key=rank)
            kept.extend(cls[:args.max_per_class])
        rows = kept

    summary = dc.write_dataset(args.out, [tuple(r) for r in rows])
    elapsed = time.time() - t0
    cmd = dc.command_line(argv, args.out)
    readme = f"""# WordNet noun glosses by supersense (lexicographer file)

A text-classification dataset: the text is the gloss (definition and usage examples) of a WordNet
noun synset, the label its lexicographer file ("supersense"), e.g. `noun.animal`. Built by
`scripts/data/build_wordnet_supersense.py`; check it with `scripts/data/check_splits.py`.

## Provenance and credit

- Source: WordNet 3.0 as packaged by Debian, `wordnet-base` version {version},
  file `/usr/share/wordnet/data.noun` ({len(raw)} bytes, md5 `{file_md5}`,
  sha256 `{file_sha}`).
- WordNet is the work of Princeton University: George A. Miller (1995), "WordNet: A Lexical
  Database for English", Communications of the ACM 38(11): 39-41; Christiane Fellbaum (1998, ed.),
  "WordNet: An Electronic Lexical Database", MIT Press. WordNet 3.0 Copyright 2006 by Princeton
  University, all rights reserved; distributed under the WordNet licence (a permissive, BSD-style
  licence: use, copy, modify and distribute for any purpose without fee, provided the copyright
  notice and the licence text appear in all copies; see /usr/share/doc/wordnet-base/copyright and
  https://wordnet.princeton.edu/license-and-commercial-use). "WordNet" is a trademark of Princeton
  University. This folder is a derived work: glosses only, with lemmas masked.
- Class names come from the {names_src}.

## Format

`train.tsv`, `dev.tsv`, `test.tsv`: UTF-8, header `id<TAB>group<TAB>label<TAB>text`; `id` is
`n<offset>` of the synset in data.noun, `group` is `n<offset>` of its first hypernym (its own offset
when it has none), `label` the lexicographer file, `text` the gloss. `labels.txt`: labels, sorted.
`manifest.sha256`: `sha256sum -c` input for those four files.

## How it was built

```
{cmd}
```

1. Classes: {', '.join(f'{c} ({by_name[c]:02d})' for c in wanted)}.
2. Text = the gloss only (after ` | `); the lemma words are not part of the text (they would give
   the class away). Inside the gloss, every occurrence of one of the synset's own lemmas (the whole
   lemma with `_` read as a space, and for multi-word lemmas each word of 3+ letters that is not a
   stop word; optional `-s`/`-es` plural; case-insensitive) is replaced by `{MASK}`:
   {masked} glosses were changed (counted before any per-class cap). Inflections beyond `-s`/`-es` (e.g. `mice`) are not masked.
3. Glosses shorter than {args.min_chars} characters after masking dropped ({stats['short']}); exact
   duplicate glosses (case-insensitive) dropped after the first in file order ({stats['dup']}).
4. {'At most ' + str(args.max_per_class) + ' synsets per class, the ones with the smallest salted sha256 of their id (a deterministic random sample); `--max-per-class 0` builds the full set.' if args.max_per_class else 'No per-class cap (all synsets of these classes).'}

Splits: by **group**, `sha256("{dc.SPLIT_SALT}:" + group) mod 100`: 0-9 test, 10-19 dev, 20-99
train. The group is the synset's first hypernym, so sibling synsets, whose glosses often follow one
template ("any of various ...", "a genus of ..."), share a split. Exception: a hypernym with more
than {args.max_group} hyponyms among all synsets of these classes (flat lists such as the instances of "city" or of a
nationality+occupation) would put most of a class into one split, so each of its members is its own
group ({len(big)} such families, {n_big_members} synsets). Their glosses are templated ("a city in
...", "United States writer ..."): such near-duplicates do occur across splits.

## Counts

{dc.counts_table(summary)}

Sizes: train.tsv {summary['sizes']['train']} B, dev.tsv {summary['sizes']['dev']} B,
test.tsv {summary['sizes']['test']} B.

Content hash, sha256 of `train.tsv`+`dev.tsv`+`test.tsv` concatenated in that order:
`{summary['content_sha256']}`
"""
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme)
    dc.log(f"build_wordnet_supersense: {summary['n']} examples, {len(summary['labels'])} labels -> "
           f"{args.out} ({elapsed:.1f}s); masked {masked}; stats {stats}")
    dc.log(dc.counts_table(summary))
    dc.log(f"content sha256 {summary['content_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
