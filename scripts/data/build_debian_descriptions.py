#!/usr/bin/python3
"""Builds a text-classification dataset from Debian bookworm package descriptions (label = Section).

Sources: the apt index files of bookworm main: binary-amd64/Packages (Package, Source, Section,
Description-md5) joined on Description-md5 with i18n/Translation-<lang> (Description-<lang>, the
human-written description; the non-English ones come from the Debian Description Translation
Project, DDTP). scripts/data/fetch_debian_indexes.sh fetches them into .cache/ with a private apt
configuration; this script calls it when the index files are not there yet (or with --fetch).

Clean-up (in this order):
  1. sections: "contrib/", "non-free/", "non-free-firmware/" prefixes are stripped; only the
     requested sections are kept (--sections; "all" = every section not in NON_TOPICAL).
  2. binaries named lib*, *-dev, *-doc, *-dbg, *-dbgsym, *-data, *-common, *-l10n are dropped,
     and so are transitional/dummy packages (synopsis says so).
  3. text = the LONG description only (the one-line synopsis is dropped: it often starts with or
     is the package name and is near-identical across a source's binaries). Paragraph marks
     (" .") become spaces; whitespace is collapsed. Every occurrence of the package name or the
     source-package name (case-insensitive, delimited by non-alphanumeric characters, so also
     inside "apt-get" or "foo.conf"; "-" in a name also matches a space) is replaced by <pkg>.
  4. (languages other than en) a "translation" whose long text is identical to the English one
     is dropped; texts shorter than --min-chars (after masking) are dropped.
  5. ONE binary per source package: the one with the longest text in the requested language,
     ties broken by the alphabetically first package name.
  6. near-duplicates across source packages (same first 100 characters after lower-casing and
     collapsing non-word runs: template descriptions of module families) keep one representative,
     the longest text (ties: first source name); --keep-near-duplicates disables this.
  7. split by source package with a salted sha256 of the source name (80/10/10), the same
     function for every language, so a source package is in the same split in every language.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import datasets_common as dc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_LISTS = os.path.join(REPO, ".cache", "debian-apt", "lists")
DEFAULT_SECTIONS = ["games", "science", "sound", "net", "graphics", "admin", "text", "math"]
NON_TOPICAL = {"libs", "oldlibs", "libdevel", "doc", "debug", "localization", "metapackages", "kernel",
               "introspection", "translations", "tasks", "misc", "otherosfs", "shells", "interpreters",
               "java", "perl", "python", "ruby", "javascript", "rust", "golang", "haskell", "ocaml",
               "lisp", "php", "r", "tcl", "vcs", "zope", "cli-mono", "gnu-r", "gnustep", "fonts",
               "x11", "gnome", "kde", "xfce", "httpd", "embedded", "comm", "non-free", "contrib"}
NAME_DROP = re.compile(r"^lib|-(dev|doc|dbg|dbgsym|data|common|l10n)$")
TRANSITIONAL = re.compile(r"transitional|dummy package", re.I)
MASK = "<pkg>"
NEAR_CHARS = 100


def near_key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower())[:NEAR_CHARS]


def open_index(path: str):
    """Opens an index file that may be stored plain, .lz4, .gz or .xz (apt may keep it compressed)."""
    for ext, cmd in (("", None), (".lz4", ["lz4cat"]), (".gz", ["zcat"]), (".xz", ["xzcat"])):
        p = path + ext
        if os.path.exists(p):
            if cmd is None:
                return open(p, "rb").read().decode("utf-8"), p
            out = subprocess.run(cmd + [p], check=True, capture_output=True).stdout
            return out.decode("utf-8"), p
    raise FileNotFoundError(path + "{,.lz4,.gz,.xz}")


def stanzas(text: str):
    """Yields RFC-822 stanzas as dicts; a continuation line (leading space) extends the field."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t" and key is not None:
                fields[key] += "\n" + line
            else:
                k, _, v = line.partition(":")
                key = k
                fields[key] = v.strip()
        if fields:
            yield fields


def split_description(value: str) -> tuple[str, str]:
    """Splits a Description field into (synopsis, long text); ' .' lines are paragraph breaks."""
    lines = value.split("\n")
    synopsis = lines[0].strip()
    body = []
    for l in lines[1:]:
        l = l[1:] if l.startswith(" ") else l
        body.append("" if l.strip() == "." else l)
    return synopsis, "\n".join(body)


def mask_names(text: str, names: set[str]) -> tuple[str, int]:
    """Replaces whole-token occurrences of the names (case-insensitive) by MASK."""
    variants = set()
    for n in names:
        variants.add(n)
        if "-" in n:
            variants.add(n.replace("-", " "))
    n_sub = 0
    # longest first so that "foo-bar" is masked before "foo"
    for v in sorted(variants, key=len, reverse=True):
        # boundaries: any character that is not a letter or digit, so that the name is also masked
        # inside compounds: "apt-get" -> "<pkg>-get", "foo.conf" -> "<pkg>.conf", URLs, paths
        pat = re.compile(r"(?<![^\W_])" + re.escape(v).replace(r"\ ", r"[\s\-]+") + r"(?![^\W_])",
                         re.IGNORECASE)
        text, k = pat.subn(MASK, text)
        n_sub += k
    return text, n_sub


def find_list(lists: str, suffix: str) -> str:
    for f in sorted(os.listdir(lists)):
        base = re.sub(r"\.(lz4|gz|xz)$", "", f)
        if base.endswith(suffix):
            return os.path.join(lists, base)
    raise FileNotFoundError(f"no *{suffix} in {lists}")


def release_info(lists: str) -> dict:
    path = find_list(lists, "_InRelease")
    info = {"file": os.path.basename(path), "sha256": {}, "md5": {}}
    text = open(path, encoding="utf-8").read()
    section = None
    for line in text.split("\n"):
        if line.startswith(("Origin:", "Suite:", "Version:", "Codename:", "Date:")):
            k, _, v = line.partition(":")
            info[k.lower()] = v.strip()
        elif line in ("MD5Sum:", "SHA256:"):
            section = "md5" if line == "MD5Sum:" else "sha256"
        elif line.startswith(" ") and section:
            parts = line.split()
            if len(parts) == 3:
                info[section][parts[2]] = (parts[0], int(parts[1]))
        elif line and not line.startswith(" "):
            section = None
    return info


def file_hashes(path: str) -> tuple[str, str, int]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
            n += len(chunk)
    return md5.hexdigest(), sha.hexdigest(), n


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lang", default="en", help="description language (en, fr, it, de, da, ...)")
    ap.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                    help="comma-separated sections to keep, or 'all' (every topical section)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--min-chars", type=int, default=120, help="minimum text length after masking")
    ap.add_argument("--min-per-class", type=int, default=0,
                    help="with --sections all: drop sections with fewer examples")
    ap.add_argument("--keep-near-duplicates", action="store_true",
                    help="do not collapse texts that share their first 100 normalised characters")
    ap.add_argument("--lists", default=DEFAULT_LISTS, help="folder with the apt index files")
    ap.add_argument("--fetch", action="store_true", help="(re)fetch the index files first")
    args = ap.parse_args(argv[1:])
    t0 = time.time()

    if args.fetch or not os.path.isdir(args.lists) or not any("_Packages" in f for f in os.listdir(args.lists)):
        langs = sorted({"en", "fr", "it", "de", "da", args.lang})
        subprocess.run([os.path.join(HERE, "fetch_debian_indexes.sh"),
                        "--cache", os.path.dirname(args.lists), "--langs", " ".join(langs)], check=True)

    rel = release_info(args.lists)
    pk_path = find_list(args.lists, "_main_binary-amd64_Packages")
    tr_path = find_list(args.lists, f"_main_i18n_Translation-{args.lang}")
    pk_text, pk_real = open_index(pk_path)
    tr_text, tr_real = open_index(tr_path)

    desc_field = f"Description-{args.lang}"
    translations: dict[str, str] = {}
    for st in stanzas(tr_text):
        if "Description-md5" in st and desc_field in st:
            translations[st["Description-md5"]] = st[desc_field]

    english: dict[str, str] = {}
    if args.lang != "en":  # to spot "translations" that are verbatim copies of the English text
        en_text, _ = open_index(find_list(args.lists, "_main_i18n_Translation-en"))
        for st in stanzas(en_text):
            if "Description-md5" in st and "Description-en" in st:
                english[st["Description-md5"]] = dc.one_line(split_description(st["Description-en"])[1])
        del en_text

    wanted = None if args.sections == "all" else set(s.strip() for s in args.sections.split(",") if s.strip())
    stats = {"packages": 0, "section": 0, "name": 0, "transitional": 0, "no_translation": 0, "untranslated_copy": 0,
             "short": 0}
    masked_rows = 0
    candidates: dict[str, list[tuple[str, str, str]]] = {}  # source -> [(package, section, text)]
    seen = set()
    for st in stanzas(pk_text):
        pkg = st.get("Package")
        if not pkg or pkg in seen:
            continue
        seen.add(pkg)
        stats["packages"] += 1
        section = st.get("Section", "").split("/")[-1]
        if (wanted is not None and section not in wanted) or (wanted is None and section in NON_TOPICAL) \
                or not section:
            stats["section"] += 1
            continue
        if NAME_DROP.search(pkg):
            stats["name"] += 1
            continue
        md5 = st.get("Description-md5")
        if md5 not in translations:
            stats["no_translation"] += 1
            continue
        synopsis, body = split_description(translations[md5])
        if TRANSITIONAL.search(synopsis) or TRANSITIONAL.search(st.get("Description", "")):
            stats["transitional"] += 1
            continue
        if english and english.get(md5) == dc.one_line(body):
            stats["untranslated_copy"] += 1
            continue
        source = st.get("Source", pkg).split()[0]
        text, k = mask_names(dc.one_line(body), {pkg, source})
        masked_rows += k > 0
        if len(text) < args.min_chars:
            stats["short"] += 1
            continue
        candidates.setdefault(source, []).append((pkg, section, text))

    n_candidates = sum(len(c) for c in candidates.values())
    chosen = []
    for source, cands in candidates.items():
        pkg, section, text = sorted(cands, key=lambda c: (-len(c[2]), c[0]))[0]
        chosen.append((pkg, source, section, text))
    n_sources = len(chosen)

    # near-duplicates: texts whose first NEAR_CHARS normalised characters agree (template
    # descriptions of plugin/module families, and exact duplicates) keep only one representative:
    # the longest text, ties broken by the source name.
    families: dict[str, list] = {}
    for row in chosen:
        families.setdefault(near_key(row[3]), []).append(row)
    rows = []
    dup_dropped = 0
    big_families = []
    for key, fam in families.items():
        fam.sort(key=lambda r: (-len(r[3]), r[1]))
        rows.append(fam[0])
        dup_dropped += len(fam) - 1
        if len(fam) >= 5:
            big_families.append((len(fam), fam[0][2], key[:60].strip()))
    if args.keep_near_duplicates:
        rows = chosen
        dup_dropped = 0
    rows.sort(key=lambda r: r[1])
    big_families.sort(key=lambda f: (-f[0], f[2]))

    dropped_small = []
    if wanted is None and args.min_per_class > 0:
        n_per = {}
        for r in rows:
            n_per[r[2]] = n_per.get(r[2], 0) + 1
        dropped_small = sorted(s for s, n in n_per.items() if n < args.min_per_class)
        rows = [r for r in rows if n_per[r[2]] >= args.min_per_class]

    summary = dc.write_dataset(args.out, [(r[0], r[1], r[2], r[3]) for r in rows])
    elapsed = time.time() - t0

    pk_rel = "main/binary-amd64/Packages"
    tr_rel = f"main/i18n/Translation-{args.lang}"
    idx_lines = []
    used = [(pk_rel, pk_real), (tr_rel, tr_real)]
    if args.lang != "en":
        en_path = find_list(args.lists, "_main_i18n_Translation-en")
        used.append(("main/i18n/Translation-en", open_index(en_path)[1]))
    for rel_name, real in used:
        md5, sha, size = file_hashes(real)
        ok = rel["sha256"].get(rel_name, (None,))[0] == sha
        idx_lines.append(f"| `{rel_name}` | {size} | `{md5}` | `{sha}` | "
                         f"{'matches InRelease' if ok else 'NOT listed / differs from InRelease'} |")

    lang_name = {"en": "English", "fr": "French", "it": "Italian", "de": "German", "da": "Danish"}.get(
        args.lang, args.lang)
    cmd = dc.command_line(argv, args.out)
    translators = ("Translation-en holds these original English texts" if args.lang == "en" else
                   f"the {lang_name} descriptions are human translations made by the Debian Description "
                   "Translation Project (DDTP) volunteers; untranslated packages are absent")
    readme = f"""# Debian package descriptions by archive section ({lang_name}, `{args.lang}`)

A text-classification dataset: the text is the long description of a Debian package, the label is
the package's archive `Section:`. Built by `scripts/data/build_debian_descriptions.py`; check it
with `scripts/data/check_splits.py`.

## Provenance and credit

- Source: Debian 12 "{rel.get('codename', '?')}" ({rel.get('suite', '?')}), point release
  {rel.get('version', '?')}, component **main**, architecture amd64; `InRelease` dated
  {rel.get('date', '?')}.
- The descriptions are the work of the Debian package maintainers and upstream authors; {translators}.
  Credit: the Debian Project and the Debian Description Translation Project (DDTP).
- Licence note: the texts are the package descriptions of Debian **main**, i.e. of packages that
  meet the Debian Free Software Guidelines, as Debian itself distributes them (freely, with
  attribution) in the archive's index files. There is no separate licence statement for
  description texts; the package a text belongs to is named in the `id` column, and its
  `/usr/share/doc/<package>/copyright` gives the package's licence. This folder redistributes the
  texts with attribution, in a derived form (synopsis dropped, names masked, one line per package).

Index files this folder was built from (sizes and hashes of the uncompressed files; the
`InRelease` file signed by the Debian archive lists the same SHA256){'' if args.lang == 'en' else '; Translation-en is read only to drop untranslated copies'}:

| file | bytes | md5 | sha256 | check |
|---|---:|---|---|---|
{chr(10).join(idx_lines)}

The content changes only at Debian point releases; `scripts/data/verify.sh` rebuilds this folder
and says when the descriptions changed.

## Format

`train.tsv`, `dev.tsv`, `test.tsv`: UTF-8, header `id<TAB>group<TAB>label<TAB>text`; `id` is the
binary package name, `group` the source package, `label` the section, `text` the description on one
line. `labels.txt`: the labels, sorted. `manifest.sha256`: `sha256sum -c` input for those four files.

## How it was built

```
{cmd}
```

Clean-up:
1. Sections kept: {', '.join(sorted(wanted)) if wanted else 'every section except ' + ', '.join(sorted(NON_TOPICAL))}
   (`contrib/`-style prefixes stripped).
2. Binaries named `lib*`, `*-dev`, `*-doc`, `*-dbg`, `*-dbgsym`, `*-data`, `*-common`, `*-l10n`
   dropped, and transitional/dummy packages (synopsis says "transitional" or "dummy package").
3. Text = the **long description only**: the one-line synopsis is dropped (it often is, or starts
   with, the package name and repeats across a source's binaries). Paragraph marks (` .`) and all
   whitespace runs become single spaces.
4. Name masking: every occurrence of the binary package name or the source-package name that is
   not preceded or followed by a letter or digit, case-insensitive (also with `-` matched as a space
   or hyphen run), is replaced by `{MASK}`: whole words, and the name inside compounds such as
   commands, sibling packages, paths and URLs (`apt-get` -> `{MASK}-get`, `foo.conf` -> `{MASK}.conf`).
   Packages named by a common word (`at`, `time`, `units`...) get that word masked in their own
   text too;
   {masked_rows} of the {n_candidates} candidate texts (before step 6) contained such a name. The masking is lexical: a project
   name spelled differently from the package name (e.g. "0 A.D." for `0ad`, "Zero Install" for
   `0install`, "NetworkManager" for `network-manager`) stays.
5. Texts shorter than {args.min_chars} characters after masking dropped.
6. **One binary package per source package**: the one with the longest text, ties broken by the
   alphabetically first package name ({n_sources} source packages).
7. Near-duplicates across source packages: texts whose first {NEAR_CHARS} characters agree after
   lower-casing and replacing non-word runs by a space (template descriptions of module/plugin
   families, exact duplicates) keep one representative, the longest text (ties: first source
   name). {dup_dropped} texts dropped{'' if not args.keep_near_duplicates else ' (disabled: --keep-near-duplicates)'}. Largest families collapsed:
   {'; '.join(f'{n} x {lab} "{k}..."' for n, lab, k in big_families[:8]) or 'none'}.{(chr(10) + '8. Sections with fewer than ' + str(args.min_per_class) + ' examples dropped: ' + ', '.join(dropped_small)) if dropped_small else ''}

Splits: by **source package**, `sha256("{dc.SPLIT_SALT}:" + source) mod 100`: 0-9 test, 10-19 dev,
20-99 train. The function does not depend on the language, so a source package is in the same split
in every language built with this script (for cross-lingual experiments). No source package
appears in two splits.

Filter statistics: {stats['packages']} binary packages in the index; dropped: {stats['section']} for
their section, {stats['name']} by name pattern, {stats['no_translation']} without a `{desc_field}`,
{stats['transitional']} transitional/dummy, {stats['untranslated_copy']} whose "translation" is a verbatim
copy of the English long description, {stats['short']} too short.

Known residue: descriptions of one software family can still share sentences beyond their first
{NEAR_CHARS} characters (e.g. a suite's boilerplate paragraph at the end); such pairs may sit in
different splits.

## Counts

{dc.counts_table(summary)}

Sizes: train.tsv {summary['sizes']['train']} B, dev.tsv {summary['sizes']['dev']} B,
test.tsv {summary['sizes']['test']} B.

Content hash, sha256 of `train.tsv`+`dev.tsv`+`test.tsv` concatenated in that order:
`{summary['content_sha256']}`
"""
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme)

    dc.log(f"build_debian_descriptions: lang={args.lang} {summary['n']} examples, "
           f"{len(summary['labels'])} labels -> {args.out} ({elapsed:.1f}s)")
    dc.log(dc.counts_table(summary))
    dc.log(f"content sha256 {summary['content_sha256']}; masked {masked_rows}; near-dups dropped {dup_dropped}; "
           f"families>=5 {big_families[:10]}; filter stats {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
