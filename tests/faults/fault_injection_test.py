#!/usr/bin/env python3
"""Fault injection: `kill -9` at random moments of `muki run`, and a full disk during its writes
and during `muki teacher train`. After every fault, running the same command again must finish
with exactly the numbers of a run that was never disturbed: nothing half-written may be read back
as valid.

usage: fault_injection_test.py MUKI_BINARY SOURCE_DIR [--keep]

Python rather than a gtest case: the test is process control (a session to SIGKILL at a chosen
moment; RLIMIT_FSIZE and an ignored SIGXFSZ set between fork and exec) and file comparison, which
the standard library does in a few lines; and as its own ctest entry it gets its own timeout,
where in muki_cli_tests it would be one more case of two minutes in a shared executable.

(a) A straight run is timed; 20 kill times are drawn with a fixed seed, two in its startup and one
    in each eighteenth of the rest, so that every phase (teacher pass, student training,
    evaluation and report) is hit. Each trial starts from nothing (a run folder and a cache
    folder of its own), is killed, and is run again to the end.
(b) The child runs with RLIMIT_FSIZE at several sizes and SIGXFSZ ignored, so that a write past
    the limit fails with EFBIG as on a full disk. It must exit 1 with one error line naming the
    file it was writing, not crash; run again without the limit it must give the straight
    results.
"""

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIALS = 20
SEED = 20221207
TIMEOUT_S = 120  # one muki process; only against hangs

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, flush=True)
    return condition


def env():
    e = dict(os.environ)
    e.pop("MUKI_PLUGIN_PATH", None)  # only muki's own plugins
    e["OMP_WAIT_POLICY"] = "PASSIVE"
    return e


class Setup:
    def __init__(self, muki, source, work):
        self.muki = muki
        self.work = work
        data = source / "data" / "ddtp-en"
        # The test split's rows alternately as dev and test: small, and every section in both.
        rows = (data / "test.tsv").read_text(encoding="utf-8").splitlines(True)
        (work / "dev.tsv").write_text(rows[0] + "".join(rows[1::2]), encoding="utf-8")
        (work / "test.tsv").write_text(rows[0] + "".join(rows[2::2]), encoding="utf-8")
        self.data = data

    def teachers_toml(self, out):
        entries = ""
        for name, labels in (("media", '["games", "sound", "graphics", "text"]'),
                             ("science", '["science", "math", "net", "admin"]')):
            entries += (f'[[teacher]]\nname = "{name}"\noutput = "{out / name}"\nlabels = {labels}\n'
                        'seed = 1\ndevice = "cpu"\nthreads = 1\n')
        return entries + (
            f'[data]\ntrain = {{ path = "{self.data / "train.tsv"}", label = "label" }}\n'
            f'dev = {{ path = "{self.data / "dev.tsv"}", label = "label" }}\n'
            '[tokenizer]\nvocab_size = 2000\n'
            '[model]\ntype = "bag_of_embeddings"\nhidden = 32\nmax_length = 64\ndropout = 0.2\n'
            '[train]\nepochs = 2\nbatch_size = 32\nlr = 1e-2\neval_every = 0\n')

    def experiment_toml(self, teachers):
        # The transfer set is ddtp-en's dev split (515 texts): a run of about two seconds, with MC
        # dropout (K = 8) teacher passes, 22 training states and a report.
        w = self.work
        return (
            '[experiment]\nname = "faults"\nseed = 3\ndevice = "cpu"\nthreads = 1\ndeterministic = true\n'
            f'output_dir = "{w / "runs" / "straight"}"\ncache_dir = "{w / "caches" / "straight"}"\n'
            f'[data]\ntransfer = {{ path = "{self.data / "dev.tsv"}" }}\n'
            f'dev = {{ path = "{w / "dev.tsv"}", label = "label" }}\n'
            f'test = {{ path = "{w / "test.tsv"}", label = "label" }}\n'
            f'[[teachers]]\nname = "media"\nadapter = "native"\noptions = {{ checkpoint = "{teachers / "media"}" }}\n'
            f'[[teachers]]\nname = "science"\nadapter = "native"\noptions = {{ checkpoint = "{teachers / "science"}" }}\n'
            '[uncertainty]\nstrategy = "mc_dropout"\noptions = { samples = 8 }\n'
            '[integration]\nstrategy = "weighted"\noptions = { tau = 0.2, margin_reweighting = true }\n'
            '[student]\ntokenizer = { vocab_size = 2000 }\n'
            'model = { type = "bag_of_embeddings", hidden = 32, max_length = 64 }\n'
            'train = { epochs = 6, batch_size = 32, lr = 1e-2, eval_every = 5, patience = 0 }\n')


def run_args(setup, config, name):
    """`muki run` into run folder `name` with a cache of its own."""
    return [str(setup.muki), "run", str(config), "--log-level", "info",
            "--set", f'experiment.output_dir="{setup.work / "runs" / name}"',
            "--set", f'experiment.cache_dir="{setup.work / "caches" / name}"']


def run(args, limit=None):
    """Runs muki to the end; (exit code, stdout + stderr). With `limit`, no file it writes may
    grow past `limit` bytes, and a write that would is refused with EFBIG (SIGXFSZ ignored), as
    on a full disk."""
    def full_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env(),
                       timeout=TIMEOUT_S, preexec_fn=full_disk if limit is not None else None,
                       restore_signals=limit is None)
    return p.returncode, p.stdout.decode("utf-8", "replace")


# Summary fields that legitimately differ between a straight and a resumed run: wall-clock
# times, where the run is, and what the resume found done.
VOLATILE = {"run_dir", "train.resumed_from_step", "teacher_pass.chunks_cached", "teacher_pass.chunks_computed",
            "teacher_pass.samples_drawn", "teacher_pass.samples_asked"}


def results(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in VOLATILE and "seconds" not in k}


def jsonl_problems(file):
    """Lines of a JSON-lines file that are not JSON objects (a half-written event)."""
    bad = []
    for n, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(n)
        except ValueError:
            bad.append(n)
    return bad


def same_as_straight(what, run_dir, straight):
    if not check((run_dir / "summary.json").is_file(), f"{what}: no summary.json"):
        return False
    got, want = results(run_dir), results(straight)
    differ = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    ok = check(not differ, f"{what}: summary.json differs from the straight run's in " +
               ", ".join(f"{k} ({got.get(k)} vs {want.get(k)})" for k in differ[:8]))
    ok &= check((run_dir / "predictions.tsv").read_bytes() == (straight / "predictions.tsv").read_bytes(),
                f"{what}: predictions.tsv differs from the straight run's")
    bad = jsonl_problems(run_dir / "metrics.jsonl")
    ok &= check(not bad, f"{what}: metrics.jsonl lines {bad} are not JSON objects")
    return ok


def events(run_dir):
    try:
        return (run_dir / "metrics.jsonl").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


PHASES = ["startup", "teacher pass", "student training", "evaluation and report"]


def phase(run_dir, cache_dir):
    """Where a run is, from what it has written: (one of PHASES, a detail). The cache folder opens
    the teacher passes, the calibration events close them, and the student's checkpoint is saved
    when training ends (then come predictions.tsv, summary.json and the report)."""
    if (run_dir / "student" / "weights.pt").exists() or (run_dir / "predictions.tsv").exists():
        done = [f for f in ("predictions.tsv", "summary.json", "report/report.html") if (run_dir / f).exists()]
        return PHASES[3], "had written " + (", ".join(done) if done else "the student")
    log = events(run_dir)
    if '"event": "calibration"' in log or (run_dir / "state").exists():
        return PHASES[2], "%d evaluations logged" % log.count('"event": "eval"')
    if (cache_dir / "teacher-pass").exists():
        return PHASES[1], f"{len(list((cache_dir / 'teacher-pass').glob('*/chunk-*.bin')))} of 6 chunks cached"
    return PHASES[0], "config, plugins, data"


def timed_straight_run(setup, config):
    """The straight run, polled for when each phase began."""
    run_dir, cache = setup.work / "runs" / "straight", setup.work / "caches" / "straight"
    log = setup.work / "straight.log"
    marks = {}
    with open(log, "wb") as out:
        start = time.monotonic()
        p = subprocess.Popen(run_args(setup, config, "straight"), stdout=out, stderr=subprocess.STDOUT, env=env())
        while p.poll() is None:
            marks.setdefault(phase(run_dir, cache)[0], time.monotonic() - start)
            time.sleep(0.002)
        duration = time.monotonic() - start
    check(p.returncode == 0, "the straight run failed:\n" + log.read_text(errors="replace"))
    return duration, marks


def kill_during(args, run_dir, cache, log, in_phase, offset):
    """Starts `args`, waits until the run is in phase `in_phase` (or past it), then `offset`
    seconds more, and kills it; where it was then, or None when it finished first."""
    with open(log, "wb") as out:
        # Its own session: the kill takes the run's children (gnuplot) too, as a crash would;
        # an orphaned gnuplot would go on writing into the report folder of the resumed run.
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env(), start_new_session=True)
        deadline = time.monotonic() + TIMEOUT_S
        while PHASES.index(phase(run_dir, cache)[0]) < PHASES.index(in_phase) and p.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.002)
        try:
            p.wait(timeout=offset)
            return None
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return phase(run_dir, cache)


def kill_trials(setup, config):
    duration, marks = timed_straight_run(setup, config)
    straight = setup.work / "runs" / "straight"
    print(f"straight run: {duration:.2f} s; phases began at " +
          ", ".join(f"{name} {t:.2f} s" for name, t in sorted(marks.items(), key=lambda m: m[1])), flush=True)
    if not check(all(p in marks for p in PHASES), f"the straight run was not seen in every phase: {marks}"):
        return
    rng = random.Random(SEED)
    # Stratified, so that every phase is hit whatever its length: two kills in the startup
    # (loading LibTorch, the plugins and the data: about half the run, and little is written),
    # then one in each eighteenth of the rest.
    begin = marks[PHASES[1]]
    times = [(i + rng.random()) * begin / 2 for i in range(2)]
    times += [begin + (i + rng.random()) * (duration - begin) / (TRIALS - 2) for i in range(TRIALS - 2)]
    hit = {}
    for i, at in enumerate(times):
        # The startup's length varies most from run to run (and with the load of a shared
        # machine): a kill time is kept as an offset into the phase it falls in.
        target = max((p for p in PHASES if marks[p] <= at), key=PHASES.index)
        name = f"kill-{i:02d}"
        run_dir, cache = setup.work / "runs" / name, setup.work / "caches" / name
        args = run_args(setup, config, name)
        where = kill_during(args, run_dir, cache, setup.work / f"{name}.log", target, at - marks[target])
        hit.setdefault(where[0] if where else "finished before the kill", []).append(i)
        code, output = run(args)
        ok = check(code == 0, f"{name}: the resumed run failed ({code}):\n{output}")
        ok = ok and same_as_straight(name, run_dir, straight)
        resumed = ""
        if ok:
            summary = json.loads((run_dir / "summary.json").read_text())
            resumed = (f" ({summary['teacher_pass.chunks_cached']} chunks from the cache, training from step "
                       f"{summary['train.resumed_from_step']})")
        print(f"{name}: at {at:.2f} s of the straight run ({at - marks[target]:.2f} s into its {target}): " +
              (f"killed in the {where[0]} ({where[1]})" if where else "finished before the kill") +
              f"; run again: {'same results' + resumed if ok else 'DIFFERENT'}", flush=True)
        if ok:  # keep the evidence of a failure, drop the rest (about 2 MB a trial)
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    print("kills per phase: " + ", ".join(f"{k}: {len(v)}" for k, v in hit.items()), flush=True)
    for needed in PHASES[1:]:
        check(needed in hit, f"no kill landed in the {needed}; straight-run phases: {marks}")


def error_line(output, command):
    """The one error line of a failed command, with every line of a crash reported."""
    crash = [l for l in output.splitlines() if "terminate called" in l or l.startswith("frame #") or "Aborted" in l]
    check(not crash, f"muki {command} crashed instead of reporting the error:\n{output}")
    errors = [l for l in output.splitlines() if l.startswith(f"muki {command}: error: ")]
    check(len(errors) == 1, f"muki {command}: expected one error line, got {len(errors)}:\n{output}")
    return errors[0] if errors else ""


def leftovers(*folders):
    return sorted(str(f) for d in folders if d.exists() for f in d.rglob("*.tmp*"))


def disk_full_runs(setup, config):
    straight = setup.work / "runs" / "straight"
    sizes = {f.relative_to(straight).as_posix(): f.stat().st_size for f in straight.rglob("*") if f.is_file()}
    chunk = max(f.stat().st_size for f in (setup.work / "caches" / "straight").rglob("chunk-*.bin"))
    state = sizes["state/student.pt"]
    # With the teacher passes cached, metrics.jsonl is the first file to outgrow the run folder's
    # small files.
    small = max(sizes[f] for f in ("run.json", "config.toml", "labels.txt", "plugins.lock")) + 16
    # (limit in bytes, what it stops, the fragment the error must hold, a warm teacher-pass cache)
    cases = [
        (4096, "the first teacher-pass chunk", "/chunk-0.bin: cannot be written", False),
        (chunk - 100, "a teacher-pass chunk in its last bytes", "/chunk-0.bin: cannot be written", False),
        (small, "metrics.jsonl (the teacher passes are cached)", "/metrics.jsonl: cannot be written", True),
        (128 * 1024, "the first training state", "/state/student.pt: cannot write the training state", False),
        (state - 100, "a training state in its last bytes", "/state/student.pt: cannot write the training state", False),
    ]
    for n, (limit, what, fragment, warm) in enumerate(cases):
        name = f"full-{n}"
        run_dir, cache = setup.work / "runs" / name, setup.work / "caches" / name
        if warm:
            shutil.copytree(setup.work / "caches" / "straight", cache)
        args = run_args(setup, config, name)
        failed, output = run(args, limit)
        line = error_line(output, "run")
        check(failed == 1, f"{name}: exit code {failed} with files limited to {limit} bytes:\n{output}")
        check(fragment in line and "File too large" in line, f"{name}: the error does not say '{fragment}' "
              f"and why: {line!r}")
        check(not (run_dir / "summary.json").exists(), f"{name}: summary.json written despite the error")
        left = leftovers(run_dir, cache)
        check(not left, f"{name}: temporary files left behind: {left}")
        code, output = run(args)
        ok = check(code == 0, f"{name}: the run without the limit failed ({code}):\n{output}")
        ok = ok and same_as_straight(name, run_dir, straight)
        print(f"{name}: limit {limit} B ({what}) -> exit {failed}: {line}\n"
              f"        without the limit: {'same results' if ok else 'DIFFERENT'}", flush=True)


def disk_full_teacher_training(setup, straight_teachers):
    weights = (straight_teachers / "media" / "weights.pt").stat().st_size
    cases = [
        (4096, "the vocabulary", "media/vocab.txt: cannot write the vocabulary"),
        (64 * 1024, "reference.jsonl", "media/reference.jsonl: cannot be written"),
        (128 * 1024, "weights.pt", "media/weights.pt: cannot be written"),
        (weights - 100, "weights.pt in its last bytes", "media/weights.pt: cannot be written"),
    ]
    for n, (limit, what, fragment) in enumerate(cases):
        name = f"teacher full-{n}"
        out = setup.work / "teachers" / f"full-{n}"
        toml = setup.work / f"teachers-full-{n}.toml"
        toml.write_text(setup.teachers_toml(out))
        args = [str(setup.muki), "teacher", "train", str(toml)]
        failed, output = run(args, limit)
        line = error_line(output, "teacher")
        check(failed == 1, f"{name}: exit code {failed} with files limited to {limit} bytes:\n{output}")
        check(fragment in line and "File too large" in line,
              f"{name}: the error does not say '{fragment}' and why: {line!r}")
        # train_report.json marks a finished checkpoint (`--missing-only` and [prepare] skip it).
        check(not (out / "media" / "train_report.json").exists(),
              f"{name}: a failed checkpoint is marked finished")
        left = leftovers(out)
        check(not left, f"{name}: temporary files left behind: {left}")
        code, output = run(args)
        ok = check(code == 0, f"{name}: training without the limit failed ({code}):\n{output}")
        for teacher in ("media", "science"):
            for f in sorted((straight_teachers / teacher).iterdir()):
                if f.name == "train_report.json":
                    continue  # times and the config's path
                ok &= check((out / teacher / f.name).is_file() and
                            (out / teacher / f.name).read_bytes() == f.read_bytes(),
                            f"{name}: {teacher}/{f.name} differs from the straight training's")
        print(f"{name}: limit {limit} B ({what}) -> exit {failed}: {line}\n"
              f"        without the limit: {'same checkpoints' if ok else 'DIFFERENT'}", flush=True)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    muki, source = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    work = Path(tempfile.mkdtemp(prefix="muki-faults-"))
    started = time.monotonic()
    try:
        setup = Setup(muki, source, work)
        teachers = work / "teachers" / "straight"
        (work / "teachers.toml").write_text(setup.teachers_toml(teachers))
        code, output = run([str(muki), "teacher", "train", str(work / "teachers.toml"), "--log-level", "warn"])
        if not check(code == 0, f"teacher training failed:\n{output}"):
            return 1
        config = work / "experiment.toml"
        config.write_text(setup.experiment_toml(teachers))
        kill_trials(setup, config)
        if (work / "runs" / "straight" / "summary.json").exists():
            disk_full_runs(setup, config)
        disk_full_teacher_training(setup, teachers)
    finally:
        if "--keep" in sys.argv or failures:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{len(failures)} failure(s) in {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
