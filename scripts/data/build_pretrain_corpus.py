#!/usr/bin/python3
"""Builds a multilingual unlabeled corpus for masked-language-model pre-training from Debian descriptions.

Sources: the apt index files of bookworm main (the same ones as build_debian_descriptions.py):
binary-amd64/Packages (Package, Source, Description-md5) joined on Description-md5 with
i18n/Translation-<lang> for en, fr, de, it, es (the non-English texts are the human translations of
the Debian Description Translation Project, DDTP). Fetch them with
  scripts/data/fetch_debian_indexes.sh --langs "en fr de it es"
which prints the lists folder (the default of --lists) on its last line.

Selection and clean-up (in this order):
  1. every package of main, every section; one text per (language, Description-md5): a description
     shared by several binaries counts once. Its "carriers" are all the binaries of Packages with
     that md5, and their source packages (Source: without the version; absent = the package).
  2. NO dev/test text: a description is dropped when ANY carrier's source package is outside the
     train split of the classification sets (datasets_common.split_of, a salted hash of the source
     name, the same in every language), and, belt and braces, when any carrier's source is a
     `group` or any carrier is an `id` of the committed dev.tsv/test.tsv of data/ddtp-en and
     data/ddtp-fr (--devtest). Descriptions whose md5 is in no amd64 Packages stanza (source
     unknown) are dropped too.
  3. text = the LONG description only (synopsis dropped, " ." paragraph marks become spaces,
     whitespace collapsed: split_description + one_line), the package and source names of every
     carrier masked as <pkg> (mask_names), exactly as in the classification sets. A non-English
     "translation" whose long text is the English one verbatim is dropped; so are texts of fewer
     than --min-words words (after masking).
  4. a text equal to a dev/test text of the committed sets after normalisation (case-folded,
     non-word runs collapsed), or sharing its first 100 normalised characters with one
     (template families), is dropped whatever its source; identical cleaned texts within a
     language are kept once (the first in output order).
  5. held-out slice: source packages linked by shared descriptions form one unit; a unit goes to
     heldout.txt when sha256("muki-pretrain-heldout-v1:" + its first source name) mod 1000 is below
     --heldout-permille (default 20, ~2%), so heldout.txt and corpus.txt never share a source package.

Output folder (--out, default <repo>/.cache/pretrain-corpus):
  corpus.txt, heldout.txt        one text a line, UTF-8, sorted by (language, first package name, md5)
  corpus.meta.tsv, heldout.meta.tsv
                                 header lang<TAB>packages<TAB>sources<TAB>md5, line n+1 describes line n
  manifest.json                  counts per language, exclusions per reason, sha256 of the outputs
                                 and of every input file, the command line
The bytes of the text files depend only on the input files. The build ends with the check below.

--wordnet DIR adds English WordNet noun glosses (DIR holds data.noun of Debian's wordnet-base; the
encoder for the settings with data/wordnet-supersense, whose dev and test texts then join --devtest).
Their language is "en-wn"; in the meta files a gloss's "packages" is its synset id n<offset> and its
"sources" its first hypernym n<offset> (itself when it has none), the two ids the supersense set
groups by. A gloss is kept only when both ids are in the train split of the same salted hash, neither
is a committed dev/test id or group, and its text passes the checks of step 4; lemmas are masked as
<lemma> as in data/wordnet-supersense (build_wordnet_supersense.mask_lemmas), and its held-out unit
is its hypernym, so siblings stay in one file.

--check: verifies an existing output folder (a corpus whose manifest lists "en-wn" against the WordNet set
too): no line equals (after normalisation) or shares the first
100 normalised characters with a dev/test text of the --devtest sets, no meta row names a source outside
the train split, a committed dev/test group or id, heldout and corpus share no source, the sha256s
match manifest.json. Exit 1 with file:line per problem otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import datasets_common as dc  # noqa: E402
from build_debian_descriptions import (NEAR_CHARS, file_hashes, find_list, mask_names, open_index,  # noqa: E402
                                       release_info, split_description, stanzas)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_LISTS = os.path.join(REPO, ".cache", "debian-apt", "lists")
DEFAULT_OUT = os.path.join(REPO, ".cache", "pretrain-corpus")
DEFAULT_LANGS = "en fr de it es"
DEFAULT_DEVTEST = [os.path.join(REPO, "data", "ddtp-en"), os.path.join(REPO, "data", "ddtp-fr")]
HELDOUT_SALT = "muki-pretrain-heldout-v1"
META_HEADER = "lang\tpackages\tsources\tmd5"
OUTPUTS = ("corpus", "heldout")
WORDNET_LANG = "en-wn"
WORDNET_SET = os.path.join(REPO, "data", "wordnet-supersense")
MAX_ERRORS = 20
_NONWORD = re.compile(r"\W+")


def norm_key(text: str) -> str:
    """The normalisation under which corpus and dev/test texts are compared: case-folded, runs of
    non-word characters (spaces, punctuation, the <> of <pkg>) collapsed to one space."""
    return _NONWORD.sub(" ", text.casefold()).strip()


def near_key(text: str) -> str:
    """First NEAR_CHARS characters of the normalised text (the classification sets' family key)."""
    return norm_key(text)[:NEAR_CHARS]


def devtest_match(text: str, dt: dict) -> str | None:
    """Why step 4 drops `text` ("dev_test_text" or "dev_test_near_text"), or None to keep it."""
    k = norm_key(text)
    if k in dt["texts"]:
        return "dev_test_text"
    return "dev_test_near_text" if k[:NEAR_CHARS] in dt["near"] else None


def rel(path: str) -> str:
    p = os.path.abspath(path)
    return os.path.relpath(p, REPO) if p.startswith(REPO + os.sep) else path


def heldout_bucket(source: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{HELDOUT_SALT}:{source}".encode("utf-8")).digest()[:8], "big") % 1000


def load_devtest(dirs: list[str]) -> dict:
    """Groups, ids and texts (by norm_key and near_key) of the dev.tsv/test.tsv files of the given sets."""
    dt = {"groups": {}, "ids": {}, "texts": {}, "near": {}, "files": {}}
    for d in dirs:
        for s in ("dev", "test"):
            path = os.path.join(d, f"{s}.tsv")
            if not os.path.isfile(path):
                raise SystemExit(f"build_pretrain_corpus: {rel(path)} missing (the committed dev/test split "
                                 "whose text must stay out of the corpus)")
            data = open(path, "rb").read()
            dt["files"][rel(path)] = hashlib.sha256(data).hexdigest()
            lines = data.decode("utf-8").split("\n")
            if lines[0].split("\t") != dc.HEADER.split("\t"):
                raise SystemExit(f"build_pretrain_corpus: {rel(path)}:1: bad header")
            for ln, line in enumerate(lines[1:], 2):
                if not line:
                    continue
                rid, group, _label, text = line.split("\t")
                where = f"{rel(path)}:{ln} (id {rid})"
                dt["groups"].setdefault(group, where)
                dt["ids"].setdefault(rid, where)
                dt["texts"].setdefault(norm_key(text), where)
                dt["near"].setdefault(near_key(text), where)
    return dt


def locate(lists: str, suffix: str, langs: str) -> str:
    fetch = f'scripts/data/fetch_debian_indexes.sh --langs "{langs}"'
    if not os.path.isdir(lists):
        raise SystemExit(f"build_pretrain_corpus: lists folder {lists} does not exist; fetch the index files "
                         f"with: {fetch}  (it prints the lists folder on its last line; pass it as --lists)")
    try:
        return find_list(lists, suffix)
    except FileNotFoundError:
        raise SystemExit(f"build_pretrain_corpus: missing index file *{suffix} in {lists}; fetch it with: {fetch}"
                         "  (it prints the lists folder on its last line; pass it as --lists)") from None


class Units:
    """Union-find over source packages: sources that share a description form one unit."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the alphabetically first source names the unit
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def sha256_of(path: str) -> str:
    return file_hashes(path)[1]


def check(out_dir: str, dt: dict) -> tuple[list[str], str]:
    """The no-test-text-in-corpus check of an output folder; returns (errors, summary)."""
    errors: list[str] = []
    sources_of: dict[str, set[str]] = {}
    n_lines = {}
    for name in OUTPUTS:
        tpath = os.path.join(out_dir, f"{name}.txt")
        if not os.path.isfile(tpath):
            errors.append(f"{tpath}: missing")
            continue
        try:
            lines = open(tpath, "rb").read().decode("utf-8").split("\n")
        except UnicodeDecodeError as e:
            errors.append(f"{tpath}: invalid UTF-8 ({e.reason} at byte {e.start})")
            continue
        if lines and lines[-1] == "":
            lines.pop()
        n_lines[name] = len(lines)
        for ln, line in enumerate(lines, 1):
            if not line.strip():
                errors.append(f"{tpath}:{ln}: empty line")
                continue
            k = norm_key(line)
            if k in dt["texts"]:
                errors.append(f"{tpath}:{ln}: equals the dev/test text of {dt['texts'][k]}")
            elif k[:NEAR_CHARS] in dt["near"]:
                errors.append(f"{tpath}:{ln}: shares its first {NEAR_CHARS} normalised characters with the "
                              f"dev/test text of {dt['near'][k[:NEAR_CHARS]]}")
        mpath = os.path.join(out_dir, f"{name}.meta.tsv")
        if not os.path.isfile(mpath):
            errors.append(f"{mpath}: missing (needed to check the source packages)")
            continue
        meta = open(mpath, encoding="utf-8").read().split("\n")
        if meta and meta[-1] == "":
            meta.pop()
        if not meta or meta[0] != META_HEADER:
            errors.append(f"{mpath}:1: bad header")
            continue
        if len(meta) - 1 != len(lines):
            errors.append(f"{mpath}: {len(meta) - 1} rows but {tpath} has {len(lines)} lines")
        srcs = sources_of.setdefault(name, set())
        for ln, row in enumerate(meta[1:], 2):
            f = row.split("\t")
            if len(f) != 4:
                errors.append(f"{mpath}:{ln}: {len(f)} fields, expected 4")
                continue
            for pkg in f[1].split(","):
                if pkg in dt["ids"]:
                    errors.append(f"{mpath}:{ln}: package {pkg!r} is a dev/test id of {dt['ids'][pkg]}")
                if f[0] == WORDNET_LANG and dc.split_of(pkg) != "train":
                    errors.append(f"{mpath}:{ln}: synset {pkg!r} is in the {dc.split_of(pkg)} split")
            for src in f[2].split(","):
                srcs.add(src)
                if dc.split_of(src) != "train":
                    errors.append(f"{mpath}:{ln}: source {src!r} is in the {dc.split_of(src)} split")
                if src in dt["groups"]:
                    errors.append(f"{mpath}:{ln}: source {src!r} is a dev/test group of {dt['groups'][src]}")
    shared = sources_of.get("corpus", set()) & sources_of.get("heldout", set())
    for src in sorted(shared)[:MAX_ERRORS]:
        errors.append(f"source {src!r} is in both corpus.meta.tsv and heldout.meta.tsv")
    mf = os.path.join(out_dir, "manifest.json")
    if os.path.isfile(mf):
        files = json.load(open(mf, encoding="utf-8")).get("outputs", {})
        for name, info in files.items():
            p = os.path.join(out_dir, name)
            if os.path.isfile(p) and sha256_of(p) != info.get("sha256"):
                errors.append(f"{p}: sha256 differs from {mf}")
    summary = (f"OK {out_dir}: corpus {n_lines.get('corpus', 0)} lines, heldout {n_lines.get('heldout', 0)} lines; "
               f"none equals or shares its first {NEAR_CHARS} normalised characters with any of the "
               f"{len(dt['texts'])} dev/test texts of {len(dt['files'])} files; no source outside the train split "
               f"or among the {len(dt['groups'])} dev/test groups; no source in both files")
    return errors, summary


def report(errors: list[str], summary: str) -> int:
    if errors:
        for e in errors[:MAX_ERRORS * 2]:
            print(f"check_pretrain_corpus: FAIL {e}", file=sys.stderr)
        if len(errors) > MAX_ERRORS * 2:
            print(f"check_pretrain_corpus: ... and {len(errors) - MAX_ERRORS * 2} more problems", file=sys.stderr)
        return 1
    print(summary)
    return 0


def wordnet_candidates(data_noun: str, dt: dict, min_words: int, excluded: dict) -> list:
    """The WordNet noun glosses that may be pre-trained on (--wordnet; the module docstring has the
    rules), as candidate rows of language WORDNET_LANG; counts the exclusions into `excluded`."""
    import build_wordnet_supersense as wn
    if not os.path.isfile(data_noun):
        raise SystemExit(f"build_pretrain_corpus: {data_noun} missing; --wordnet names the folder of WordNet's "
                         "data.noun (Debian's wordnet-base: /usr/share/wordnet, or `apt-get download wordnet-base` "
                         "and `dpkg -x` it)")
    rows = []
    for offset, _lex, lemmas, hyper, gloss in wn.synsets(open(data_noun, encoding="utf-8").read()):
        sid, group = f"n{offset}", f"n{hyper or offset}"
        if dc.split_of(sid) != "train" or dc.split_of(group) != "train":
            excluded["dev_test_split"] += 1
            continue
        if sid in dt["ids"] or sid in dt["groups"] or group in dt["groups"]:
            excluded["committed_dev_test"] += 1
            continue
        text, _ = wn.mask_lemmas(dc.one_line(gloss), lemmas)
        if len(text.split()) < min_words:
            excluded["too_short"] += 1
            continue
        reason = devtest_match(text, dt)
        if reason:
            excluded[reason] += 1
        else:
            rows.append((WORDNET_LANG, sid, "wordnet", text, [sid], [group]))
    return rows


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lists", default=DEFAULT_LISTS, help="folder with the apt index files")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default <repo>/.cache/pretrain-corpus)")
    ap.add_argument("--langs", default=DEFAULT_LANGS, help='languages, space- or comma-separated (default "%(default)s")')
    ap.add_argument("--devtest", nargs="+", default=DEFAULT_DEVTEST,
                    help="committed sets whose dev.tsv/test.tsv must stay out (default data/ddtp-en data/ddtp-fr)")
    ap.add_argument("--min-words", type=int, default=5, help="minimum words of a text after masking")
    ap.add_argument("--heldout-permille", type=int, default=20, help="held-out share of source units, per mille")
    ap.add_argument("--wordnet", metavar="DIR", help="also WordNet's noun glosses from DIR/data.noun (wordnet-base)")
    ap.add_argument("--check", action="store_true", help="only check an existing --out folder")
    args = ap.parse_args(argv[1:])
    t0 = time.time()
    manifest_path = os.path.join(args.out, "manifest.json")
    has_wordnet = args.wordnet or (args.check and os.path.isfile(manifest_path) and
                                   WORDNET_LANG in json.load(open(manifest_path, encoding="utf-8")).get("langs", []))
    if has_wordnet and WORDNET_SET not in map(os.path.abspath, args.devtest):
        args.devtest = args.devtest + [WORDNET_SET]  # a corpus with glosses is checked against WordNet's dev/test too
    dt = load_devtest(args.devtest)
    if args.check:
        return report(*check(args.out, dt))

    requested = list(dict.fromkeys(l for l in re.split(r"[\s,]+", args.langs.strip()) if l))
    langs = sorted(requested + [WORDNET_LANG] * bool(args.wordnet))
    lang_arg = " ".join(requested)
    pk_path = locate(args.lists, "_main_binary-amd64_Packages", lang_arg)
    tr_paths = {l: locate(args.lists, f"_main_i18n_Translation-{l}", lang_arg) for l in requested}
    if "en" not in langs:  # still needed to spot untranslated copies
        tr_paths["en"] = locate(args.lists, "_main_i18n_Translation-en", " ".join(["en"] + requested))

    # 1. carriers of every description: md5 -> binaries and their sources
    pk_text, pk_real = open_index(pk_path)
    carriers: dict[str, set[tuple[str, str]]] = {}
    units = Units()
    for st in stanzas(pk_text):
        pkg, md5 = st.get("Package"), st.get("Description-md5")
        if not pkg or not md5:
            continue
        source = st.get("Source", pkg).split()[0]
        carriers.setdefault(md5, set()).add((pkg, source))
        units.union(source, source)
    del pk_text
    for md5, cs in carriers.items():
        srcs = sorted({s for _, s in cs})
        for s in srcs[1:]:
            units.union(srcs[0], s)

    # all translations: lang -> md5 -> Description-<lang> (the first stanza of an md5 wins)
    real_paths = {"main/binary-amd64/Packages": pk_real}
    trans: dict[str, dict[str, str]] = {}
    for lang, path in sorted(tr_paths.items()):
        text, real = open_index(path)
        real_paths[f"main/i18n/Translation-{lang}"] = real
        field = f"Description-{lang}"
        d: dict[str, str] = {}
        for st in stanzas(text):
            if "Description-md5" in st and field in st:
                d.setdefault(st["Description-md5"], st[field])
        trans[lang] = d
        del text
    english = trans["en"] if "en" in langs else trans.pop("en")
    english_long = {}

    reasons = ["not_in_packages", "dev_test_split", "committed_dev_test", "untranslated_copy", "too_short",
               "dev_test_text", "dev_test_near_text", "duplicate_text"]
    excluded = {lang: {r: 0 for r in reasons} for lang in langs}
    committed_any = 0  # descriptions with a committed dev/test group/id, whatever their primary reason
    candidates = []  # (lang, first package, md5, text, packages, sources)
    all_md5 = sorted(set().union(*(trans[l].keys() for l in requested)))
    for md5 in all_md5:  # md5-major order: the name patterns of mask_names stay in re's cache across languages
        cs = carriers.get(md5)
        present = [l for l in langs if md5 in trans.get(l, ())]
        if cs is None:
            for l in present:
                excluded[l]["not_in_packages"] += 1
            continue
        pkgs = sorted({p for p, _ in cs})
        srcs = sorted({s for _, s in cs})
        bad_split = any(dc.split_of(s) != "train" for s in srcs)
        committed = any(s in dt["groups"] for s in srcs) or any(p in dt["ids"] for p in pkgs)
        committed_any += committed * len(present)
        if bad_split or committed:
            for l in present:
                excluded[l]["dev_test_split" if bad_split else "committed_dev_test"] += 1
            continue
        names = set(pkgs) | set(srcs)
        for lang in present:
            body = dc.one_line(split_description(trans[lang][md5])[1])
            if lang != "en":
                if md5 not in english_long and md5 in english:
                    english_long[md5] = dc.one_line(split_description(english[md5])[1])
                if english_long.get(md5) == body:
                    excluded[lang]["untranslated_copy"] += 1
                    continue
            text, _ = mask_names(body, names)
            if len(text.split()) < args.min_words:
                excluded[lang]["too_short"] += 1
                continue
            reason = devtest_match(text, dt)
            if reason:
                excluded[lang][reason] += 1
                continue
            candidates.append((lang, pkgs[0], md5, text, pkgs, srcs))
    del trans, english, english_long
    if args.wordnet:
        real_paths["wordnet/data.noun"] = os.path.realpath(os.path.join(args.wordnet, "data.noun"))
        candidates += wordnet_candidates(real_paths["wordnet/data.noun"], dt, args.min_words, excluded[WORDNET_LANG])

    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    seen: set[tuple[str, str]] = set()
    out_rows: dict[str, list] = {name: [] for name in OUTPUTS}
    counts = {lang: {name: {"descriptions": 0, "words": 0} for name in OUTPUTS} for lang in langs}
    for lang, _first, md5, text, pkgs, srcs in candidates:
        if (lang, text) in seen:
            excluded[lang]["duplicate_text"] += 1
            continue
        seen.add((lang, text))
        name = "heldout" if heldout_bucket(units.find(srcs[0])) < args.heldout_permille else "corpus"
        out_rows[name].append((lang, text, pkgs, srcs, md5))
        counts[lang][name]["descriptions"] += 1
        counts[lang][name]["words"] += len(text.split())

    os.makedirs(args.out, exist_ok=True)
    outputs = {}
    for name in OUTPUTS:
        rows = out_rows[name]
        for fname, data in ((f"{name}.txt", "".join(r[1] + "\n" for r in rows)),
                            (f"{name}.meta.tsv", META_HEADER + "\n" + "".join(
                                f"{r[0]}\t{','.join(r[2])}\t{','.join(r[3])}\t{r[4]}\n" for r in rows))):
            b = data.encode("utf-8")
            with open(os.path.join(args.out, fname), "wb") as f:
                f.write(b)
            outputs[fname] = {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b), "lines": data.count("\n")}

    try:
        rel_info = release_info(args.lists)
    except FileNotFoundError:
        rel_info = {"sha256": {}}
    inputs = {}
    for name, real in sorted(real_paths.items()):
        md5, sha, size = file_hashes(real)
        inputs[name] = {"file": os.path.basename(real), "bytes": size, "sha256": sha}
        if not name.startswith("wordnet/"):  # apt's indexes are listed in InRelease; wordnet-base's file is not
            inputs[name]["matches_inrelease"] = rel_info["sha256"].get(name, (None,))[0] == sha
    tot_ex = {r: sum(excluded[l][r] for l in langs) for r in reasons}
    totals = {name: {k: sum(counts[l][name][k] for l in langs) for k in ("descriptions", "words")} for name in OUTPUTS}
    manifest = {
        "description": "muki MLM pre-training corpus: Debian bookworm main long descriptions (DDTP), "
                       "train-split source packages only; built by scripts/data/build_pretrain_corpus.py",
        "command": dc.command_line(argv, args.out),
        "release": {k: rel_info[k] for k in ("origin", "suite", "codename", "version", "date") if k in rel_info},
        "langs": langs,
        "params": {"min_words": args.min_words, "heldout_permille": args.heldout_permille,
                   "heldout_salt": HELDOUT_SALT, "split_salt": dc.SPLIT_SALT, "near_chars": NEAR_CHARS},
        "counts": counts,
        "totals": totals,
        "excluded": excluded,
        "excluded_totals": tot_ex,
        "committed_dev_test_hits": committed_any,
        "outputs": outputs,
        "inputs": inputs,
        "devtest_inputs": dt["files"],
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    elapsed = time.time() - t0

    dc.log(f"build_pretrain_corpus: {totals['corpus']['descriptions']} texts ({totals['corpus']['words']} words) "
           f"in corpus.txt, {totals['heldout']['descriptions']} ({totals['heldout']['words']} words) in heldout.txt "
           f"-> {args.out} ({elapsed:.1f}s)")
    dc.log("| lang | corpus texts | corpus words | heldout texts | heldout words |")
    for l in langs:
        c, h = counts[l]["corpus"], counts[l]["heldout"]
        dc.log(f"| {l} | {c['descriptions']} | {c['words']} | {h['descriptions']} | {h['words']} |")
    dc.log(f"excluded: {tot_ex}; descriptions with a committed dev/test group or id: {committed_any} "
           f"(all also caught by the split hash unless committed_dev_test > 0)")
    dc.log(f"corpus.txt {outputs['corpus.txt']['bytes']} B sha256 {outputs['corpus.txt']['sha256']}; "
           f"heldout.txt {outputs['heldout.txt']['bytes']} B sha256 {outputs['heldout.txt']['sha256']}")
    return report(*check(args.out, dt))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
