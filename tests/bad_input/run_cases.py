#!/usr/bin/env python3
"""The bad-input suite: runs every case of cases.toml against a built `muki` and checks its exit
code and its message. Every failing case is reported (name, command, expected vs got, output)
before the runner exits non-zero, so one run shows all regressions at once.

usage: run_cases.py MUKI SOURCE_DIR BUILD_DIR [--cases FILE] [--only SUBSTRING]... [--jobs N]
                    [--keep] [--show]

--show prints every case's output (to write a new case's expectations from what muki says).
Python 3.11+ (tomllib), standard library only.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

try:
    import tomllib
except ImportError:  # Python < 3.11
    sys.exit("run_cases.py needs Python 3.11 or newer (tomllib)")

CASE_KEYS = {"name", "template", "files", "before", "args", "exit", "expect", "reject", "absent",
             "timeout", "env"}
# Placeholders the cases may use; @BYTE:XX@ (a raw byte, for data files that are not UTF-8) is
# handled apart. A misspelt @NAME@ is an error of the suite, not a silent literal.
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
KNOWN_PLACEHOLDERS = {"MUKI", "SOURCE", "DATA", "BUILD", "FIXTURES", "PLUGINS", "TMP", "TEACHER",
                      "TEACHER2", "CORRUPT_TEACHER", "TRUNCATED_PLUGIN_DIR"}
BYTE = re.compile(rb"@BYTE:([0-9A-Fa-f]{2})@")
# Shared fixtures made once per invocation, and only when a selected case names them: training
# the teachers is the suite's slowest step.
TEACHER_FIXTURES = {"TEACHER", "TEACHER2", "CORRUPT_TEACHER"}


class SuiteError(Exception):
    """A mistake in cases.toml or a missing prerequisite: not a muki failure."""


def load_cases(path):
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    templates = doc.get("templates", {})
    cases = doc.get("case", [])
    unknown_top = set(doc) - {"templates", "case"}
    if unknown_top:
        raise SuiteError(f"{path}: unknown top-level keys {sorted(unknown_top)}")
    seen = set()
    for i, case in enumerate(cases):
        where = f"{path}: case {i + 1} ({case.get('name', '?')})"
        extra = set(case) - CASE_KEYS
        if extra:
            raise SuiteError(f"{where}: unknown keys {sorted(extra)} (known: {sorted(CASE_KEYS)})")
        for key in ("name", "args", "exit", "expect"):
            if key not in case:
                raise SuiteError(f"{where}: missing '{key}'")
        if not re.fullmatch(r"[a-z0-9_]+", case["name"]):
            raise SuiteError(f"{where}: a name is lower-case letters, digits and '_'")
        if case["name"] in seen:
            raise SuiteError(f"{where}: the name is used twice")
        seen.add(case["name"])
        if not case["expect"]:
            raise SuiteError(f"{where}: 'expect' needs at least one message fragment")
        if "template" in case and case["template"] not in templates:
            raise SuiteError(f"{where}: no template '{case['template']}'")
    return templates, cases


def placeholders_in(value):
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, list):
        return set().union(*(placeholders_in(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(placeholders_in(v) for v in value.values())) if value else set()
    return set()


class Fixtures:
    def __init__(self, muki, source, build, root):
        self.muki, self.source, self.build, self.root = muki, source, build, root
        self.values = {
            "MUKI": str(muki),
            "SOURCE": str(source),
            "DATA": str(source / "data"),
            "BUILD": str(build),
            "FIXTURES": str(build / "tests" / "fixtures"),
            "PLUGINS": str(build / "lib" / "muki" / "plugins"),
        }

    def prepare(self, needed):
        if "TRUNCATED_PLUGIN_DIR" in needed:
            self.values["TRUNCATED_PLUGIN_DIR"] = str(self.truncated_plugin())
        if needed & TEACHER_FIXTURES:
            self.train_teachers()

    def truncated_plugin(self):
        # The first 20,000 bytes of a real plugin: its ELF header is intact, its segments are cut
        # off (issue 11, finding 1: this crashed dlopen with SIGBUS).
        real = Path(self.values["PLUGINS"]) / "libmuki_uncertainty_builtin.so"
        if not real.is_file():
            raise SuiteError(f"{real} is missing: build the plugins first")
        folder = self.root / "truncated-plugin"
        folder.mkdir()
        data = real.read_bytes()
        if len(data) <= 20000:
            raise SuiteError(f"{real} has only {len(data)} bytes; the truncation would not cut it")
        (folder / "libtruncated.so").write_bytes(data[:20000])
        return folder

    def train_teachers(self):
        # Two small native teachers on disjoint halves of ddtp-en's sections, one process, ~2 s.
        out = self.root / "teachers"
        train = self.source / "data" / "ddtp-en" / "train.tsv"
        spec = out / "teachers.toml"
        common = 'seed = 1\ndevice = "cpu"\nthreads = 1\n'
        out.mkdir()
        spec.write_text(
            f'[[teacher]]\nname = "media"\noutput = "{out / "media"}"\nlabels = ["games", "sound"]\n{common}'
            f'[[teacher]]\nname = "science"\noutput = "{out / "science"}"\nlabels = ["science", "math"]\n{common}'
            f'[data]\ntrain = {{ path = "{train}", label = "label" }}\n'
            '[tokenizer]\ntype = "wordpiece"\nvocab_size = 300\n'
            '[model]\ntype = "bag_of_embeddings"\nhidden = 8\nmax_length = 32\ndropout = 0.2\n'
            '[train]\nepochs = 1\nbatch_size = 64\nlr = 1e-2\neval_every = 0\n')
        r = subprocess.run([str(self.muki), "teacher", "train", str(spec), "--log-level", "warn"],
                           cwd=out, env=muki_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", timeout=300)
        if r.returncode != 0:
            raise SuiteError(f"training the fixture teachers failed ({r.returncode}):\n{r.stdout}")
        self.values["TEACHER"] = str(out / "media")
        self.values["TEACHER2"] = str(out / "science")
        # 64 bytes overwritten in the middle of weights.pt (issue 11, finding 6): without a
        # checksum this loaded as if nothing had happened.
        corrupt = out / "corrupt"
        shutil.copytree(out / "media", corrupt)
        weights = corrupt / "weights.pt"
        data = bytearray(weights.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(range(64))
        weights.write_bytes(bytes(data))
        self.values["CORRUPT_TEACHER"] = str(corrupt)


def muki_env():
    env = dict(os.environ)
    # Only muki's own plugin folder and the ones a case names, as the C++ CLI tests run it.
    env.pop("MUKI_PLUGIN_PATH", None)
    # Passive OpenMP waiting: ctest may run other torch processes beside this one.
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def substitute(value, values, where):
    def one(match):
        key = match.group(1)
        if key.startswith("BYTE"):
            return match.group(0)
        if key not in KNOWN_PLACEHOLDERS:
            raise SuiteError(f"{where}: unknown placeholder @{key}@ (known: "
                             f"{', '.join('@' + k + '@' for k in sorted(KNOWN_PLACEHOLDERS))}, @BYTE:XX@)")
        return values[key]

    if isinstance(value, list):
        return [substitute(v, values, where) for v in value]
    return re.sub(r"@([A-Z][A-Z0-9_]*)(?::[0-9A-Fa-f]{2})?@", one, value)


def file_bytes(text):
    return BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))


class Result(NamedTuple):
    name: str
    problems: list  # empty when the case passed
    output: str
    command: list
    how: str = ""  # "exit N, S s", for --show


def run_case(case, templates, fixtures, muki, root):
    try:
        return check_case(case, templates, fixtures, muki, root)
    except SuiteError:
        raise
    except Exception as e:  # noqa: BLE001 - a setup step that cannot run fails this case only
        return Result(case["name"], [f"the runner could not run this case: {e!r}"], "", [])


def check_case(case, templates, fixtures, muki, root):
    name = case["name"]
    case_dir = root / "cases" / name
    case_dir.mkdir(parents=True)
    values = dict(fixtures.values, TMP=str(case_dir))
    files = dict(templates.get(case.get("template", ""), {}))
    files.update(case.get("files", {}))
    for rel, text in files.items():
        path = case_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file_bytes(substitute(text, values, f"case {name}, file {rel}")))
    for command in case.get("before", []):
        argv = substitute(command, values, f"case {name}, before")
        r = subprocess.run(argv, cwd=case_dir, env=muki_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace", timeout=120)
        if r.returncode != 0:
            return Result(name, [f"setup command failed ({r.returncode})"], r.stdout, argv)
    argv = [str(muki)] + substitute(case["args"], values, f"case {name}, args")
    timeout = case.get("timeout", 60)
    start = time.monotonic()
    try:
        r = subprocess.run(argv, cwd=case_dir, env=dict(muki_env(), **case.get("env", {})), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return Result(name, [f"timed out after {timeout} s (a hang)"], out, argv)
    seconds = time.monotonic() - start
    code, output = r.returncode, r.stdout
    problems = []
    if code < 0:
        problems.append(f"killed by signal {-code} (a crash); expected exit code {case['exit']}")
    elif code != case["exit"]:
        problems.append(f"exit code: expected {case['exit']}, got {code}")
    for fragment in substitute(case["expect"], values, f"case {name}, expect"):
        if fragment not in output:
            problems.append(f"missing from the output: {fragment!r}")
    for fragment in substitute(case.get("reject", []), values, f"case {name}, reject"):
        if fragment in output:
            problems.append(f"in the output, but must not be: {fragment!r}")
    for rel in substitute(case.get("absent", []), values, f"case {name}, absent"):
        if (case_dir / rel).exists():
            problems.append(f"exists, but must not: {case_dir / rel}")
    return Result(name, problems, output, argv, f"exit {code}, {seconds:.2f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("muki", type=Path)
    parser.add_argument("source", type=Path)
    parser.add_argument("build", type=Path)
    parser.add_argument("--cases", type=Path, default=Path(__file__).with_name("cases.toml"))
    parser.add_argument("--only", action="append", default=[],
                        help="run the cases whose name holds this (repeatable)")
    # Two: the project's machines have two cores, and most of a case is muki starting up.
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--show", action="store_true", help="print every case's output")
    args = parser.parse_args()

    muki, source, build = args.muki.resolve(), args.source.resolve(), args.build.resolve()
    if not os.access(muki, os.X_OK):
        print(f"run_cases.py: {muki} is not an executable muki", file=sys.stderr)
        return 2
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="muki-bad-input-"))
    try:
        templates, cases = load_cases(args.cases)
        if args.only:
            cases = [c for c in cases if any(o in c["name"] for o in args.only)]
            if not cases:
                raise SuiteError(f"no case name holds any of {args.only}")
        needed = set()
        for case in cases:
            needed |= placeholders_in(case)
            needed |= placeholders_in(templates.get(case.get("template", ""), {}))
        fixtures = Fixtures(muki, source, build, root)
        fixtures.prepare(needed)
        setup_seconds = time.monotonic() - started
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda c: run_case(c, templates, fixtures, muki, root), cases))
    except SuiteError as e:
        print(f"run_cases.py: {e}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    failed = [r for r in results if r.problems]
    if args.show:
        for r in results:
            print(f"=== {r.name} ({r.how})" if r.how else f"=== {r.name}")
            print("$ " + " ".join(r.command))
            print(r.output.rstrip())
    for r in failed:
        print(f"FAILED {r.name}")
        print("  command: " + " ".join(r.command))
        for p in r.problems:
            print("  " + p)
        print("  output:")
        print("\n".join("    | " + line for line in r.output.rstrip().splitlines()) or "    | (none)")
    total = time.monotonic() - started
    print(f"{len(results) - len(failed)} of {len(results)} bad-input cases passed "
          f"({total:.1f} s, {setup_seconds:.1f} s of it fixtures)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
