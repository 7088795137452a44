"""Shared helpers for muki's dataset builders (standard library only, Python 3.11).

Output format of every dataset folder (consumed by the C++ readers):
  train.tsv, dev.tsv, test.tsv   header "id\tgroup\tlabel\ttext", UTF-8, one example per line
  labels.txt                     one label per line, sorted
  manifest.sha256                sha256sum-style lines for the four files above
  README.md                      provenance, command, counts, content hash
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import sys

SPLITS = ("train", "dev", "test")
HEADER = "id\tgroup\tlabel\ttext"
SPLIT_SALT = "muki-split-v1"

_WS = re.compile(r"\s+")


def split_of(group: str, dev_pct: int = 10, test_pct: int = 10) -> str:
    """Deterministic split of a group (a source package, a synset) from a salted sha256.

    Independent of language, of the order of the input and of which other groups exist, so a
    group lands in the same split in every dataset built from the same group names."""
    h = int.from_bytes(hashlib.sha256(f"{SPLIT_SALT}:{group}".encode("utf-8")).digest()[:8], "big")
    bucket = h % 100
    if bucket < test_pct:
        return "test"
    if bucket < test_pct + dev_pct:
        return "dev"
    return "train"


def one_line(text: str) -> str:
    """Collapses tabs, newlines and runs of whitespace to single spaces."""
    return _WS.sub(" ", text).strip()


def write_dataset(out_dir: str, rows: list[tuple[str, str, str, str]]) -> dict:
    """Writes rows (id, group, label, text) into the split files, labels.txt and manifest.sha256.

    Rows are sorted by (label, id) inside each split, so the bytes depend only on the content.
    Returns a summary: counts per (label, split), file sizes, content hash."""
    os.makedirs(out_dir, exist_ok=True)
    by_split: dict[str, list] = {s: [] for s in SPLITS}
    for r in rows:
        for field in r:
            if "\t" in field or "\n" in field or "\r" in field:
                raise ValueError(f"field with tab/newline in row {r[0]!r}")
        by_split[split_of(r[1])].append(r)
    labels = sorted({r[2] for r in rows})
    counts = {(lab, s): 0 for lab in labels for s in SPLITS}
    content = hashlib.sha256()
    manifest = []
    for s in SPLITS:
        path = os.path.join(out_dir, f"{s}.tsv")
        data = (HEADER + "\n" + "".join("\t".join(r) + "\n"
                                        for r in sorted(by_split[s], key=lambda r: (r[2], r[0])))).encode("utf-8")
        with open(path, "wb") as f:
            f.write(data)
        content.update(data)
        manifest.append(f"{hashlib.sha256(data).hexdigest()}  {s}.tsv")
        for r in by_split[s]:
            counts[(r[2], s)] += 1
    lab_data = "".join(l + "\n" for l in labels).encode("utf-8")
    with open(os.path.join(out_dir, "labels.txt"), "wb") as f:
        f.write(lab_data)
    manifest.append(f"{hashlib.sha256(lab_data).hexdigest()}  labels.txt")
    with open(os.path.join(out_dir, "manifest.sha256"), "w", encoding="utf-8") as f:
        f.write("\n".join(manifest) + "\n")
    sizes = {s: os.path.getsize(os.path.join(out_dir, f"{s}.tsv")) for s in SPLITS}
    return {"labels": labels, "counts": counts, "content_sha256": content.hexdigest(), "sizes": sizes,
            "n": len(rows)}


def counts_table(summary: dict) -> str:
    """Markdown table of examples per label and split."""
    lines = ["| label | train | dev | test | total |", "|---|---:|---:|---:|---:|"]
    tot = {s: 0 for s in SPLITS}
    for lab in summary["labels"]:
        c = [summary["counts"][(lab, s)] for s in SPLITS]
        for s, v in zip(SPLITS, c):
            tot[s] += v
        lines.append(f"| {lab} | {c[0]} | {c[1]} | {c[2]} | {sum(c)} |")
    lines.append(f"| **all** | {tot['train']} | {tot['dev']} | {tot['test']} | {sum(tot.values())} |")
    return "\n".join(lines)


def command_line(argv: list[str], out_dir: str) -> str:
    """The command that built a folder, with the script and --out paths relative to the repo."""
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    parts = []
    for a in argv:
        if os.path.isabs(a) and a.startswith(repo + os.sep):
            a = os.path.relpath(a, repo)
        parts.append(a)
    script = os.path.relpath(os.path.abspath(parts[0]), repo) if os.path.exists(parts[0]) else parts[0]
    return " ".join(["/usr/bin/python3", shlex.quote(script)] + [shlex.quote(p) for p in parts[1:]])


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
