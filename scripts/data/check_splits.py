#!/usr/bin/python3
"""Checks a muki dataset folder (train.tsv, dev.tsv, test.tsv, labels.txt).

Usage: check_splits.py [--across] DIR [DIR ...]
  --across  also fail when a group shared by several folders (e.g. the same source package in the
            English and the French set) is in different splits in different folders

Fails (exit 1, one message per problem on stderr, each naming the file and line) when:
  - a file is missing, is not valid UTF-8, or has a header other than "id<TAB>group<TAB>label<TAB>text";
  - a row has a number of fields other than 4, an empty id/group/label or an empty text;
  - a label is not listed in labels.txt; labels.txt is unsorted, has duplicates or empty lines;
  - an id appears twice;
  - a group appears in two splits (a leak: names the group and both files);
  - manifest.sha256, when present, does not match the files.
Prints one OK line per folder otherwise.
"""

from __future__ import annotations

import hashlib
import os
import sys

SPLITS = ("train", "dev", "test")
HEADER = ["id", "group", "label", "text"]
MAX_ERRORS = 20


def check(d: str, groups_out: dict | None = None) -> tuple[list[str], str]:
    errors: list[str] = []

    def err(msg: str) -> None:
        errors.append(msg)

    def read_text(path: str) -> str | None:
        if not os.path.isfile(path):
            err(f"{path}: missing")
            return None
        data = open(path, "rb").read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            err(f"{path}:{line}: invalid UTF-8 ({e.reason} at byte {e.start})")
            return None

    labels_path = os.path.join(d, "labels.txt")
    labels: set[str] = set()
    lt = read_text(labels_path)
    if lt is not None:
        lines = lt.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for i, l in enumerate(lines, 1):
            if not l.strip():
                err(f"{labels_path}:{i}: empty label line")
        if len(set(lines)) != len(lines):
            err(f"{labels_path}: duplicate labels")
        if lines != sorted(lines):
            err(f"{labels_path}: labels not sorted")
        labels = set(lines)
        if not labels:
            err(f"{labels_path}: no labels")

    group_split: dict[str, tuple[str, int]] = {}
    ids: dict[str, str] = {}
    counts = {}
    leaks = 0
    for s in SPLITS:
        path = os.path.join(d, f"{s}.tsv")
        text = read_text(path)
        if text is None:
            continue
        if "\r" in text:
            err(f"{path}: contains carriage returns (CRLF line ends or stray \\r)")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines or lines[0].split("\t") != HEADER:
            got = lines[0] if lines else "<empty file>"
            err(f"{path}:1: bad header {got!r}, expected {'<TAB>'.join(HEADER)!r}")
            continue
        n = 0
        for ln, line in enumerate(lines[1:], 2):
            f = line.split("\t")
            if len(f) != 4:
                err(f"{path}:{ln}: {len(f)} fields, expected 4")
                continue
            rid, group, label, txt = f
            if not rid or not group or not label:
                err(f"{path}:{ln}: empty id, group or label")
            if not txt.strip():
                err(f"{path}:{ln}: empty text (id {rid!r})")
            if labels and label not in labels:
                err(f"{path}:{ln}: label {label!r} not in labels.txt (id {rid!r})")
            if rid in ids:
                err(f"{path}:{ln}: duplicate id {rid!r} (also in {ids[rid]})")
            ids[rid] = f"{s}.tsv"
            prev = group_split.get(group)
            if prev is not None and prev[0] != s:
                leaks += 1
                if leaks <= MAX_ERRORS:
                    err(f"group {group!r} appears in two splits: {os.path.join(d, prev[0] + '.tsv')}:{prev[1]} "
                        f"and {path}:{ln}")
            elif prev is None:
                group_split[group] = (s, ln)
            n += 1
        counts[s] = n
    if leaks > MAX_ERRORS:
        err(f"{d}: {leaks} rows in all whose group is in another split")

    if groups_out is not None:
        groups_out.update({g: sl[0] for g, sl in group_split.items()})

    manifest = os.path.join(d, "manifest.sha256")
    if os.path.isfile(manifest):
        for line in open(manifest, encoding="utf-8"):
            parts = line.split()
            if len(parts) != 2:
                continue
            want, name = parts
            p = os.path.join(d, name.lstrip("*"))
            if os.path.isfile(p) and hashlib.sha256(open(p, "rb").read()).hexdigest() != want:
                err(f"{p}: sha256 differs from {manifest}")

    summary = (f"OK {d}: train {counts.get('train', 0)}, dev {counts.get('dev', 0)}, test {counts.get('test', 0)} "
               f"rows, {len(labels)} labels, {len(group_split)} groups, no group in two splits")
    return errors, summary


def main(argv: list[str]) -> int:
    args = argv[1:]
    across = "--across" in args
    dirs = [a for a in args if a != "--across"]
    if not dirs:
        print(__doc__, file=sys.stderr)
        return 2
    status = 0
    seen: dict[str, tuple[str, str]] = {}  # group -> (split, folder)
    n_cross = 0
    for d in dirs:
        groups: dict[str, str] = {}
        errors, summary = check(d.rstrip("/") or "/", groups)
        if across:
            for g, sp in groups.items():
                if g in seen and seen[g][0] != sp:
                    n_cross += 1
                    if n_cross <= MAX_ERRORS:
                        errors.append(f"group {g!r} is in {sp}.tsv of {d} but in {seen[g][0]}.tsv of {seen[g][1]}")
                seen.setdefault(g, (sp, d))
        if errors:
            status = 1
            for e in errors[:MAX_ERRORS * 2]:
                print(f"check_splits: FAIL {e}", file=sys.stderr)
            if len(errors) > MAX_ERRORS * 2:
                print(f"check_splits: ... and {len(errors) - MAX_ERRORS * 2} more problems in {d}", file=sys.stderr)
        else:
            print(summary)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
