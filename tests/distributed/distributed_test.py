#!/usr/bin/env python3
"""`muki run` and `muki teacher train` as a distributed job of 2 ranks on loopback (c10d: TCPStore
and Gloo), against the same commands in one process.

usage: distributed_test.py MUKI_BINARY SOURCE_DIR [--keep]

(a) Teacher pass: a 2-rank run caches the same chunk files, byte for byte, as a single process
    (two teachers, K = 4, 64-example chunks), and its summary says the same but for world_size
    and backend.
(b) Student: with dropout 0 and deterministic mode, the 2-rank student's weights are those of
    the single process (the same global batch) within 1e-5; so are a teacher's trained by
    `muki teacher train` on 2 ranks.
(c) torchrun itself launches it (Debian's `python3 -m torch.distributed.run`, torch 1.13 flags).
(d) kill -9 of rank 1 in the middle of its share of the teacher pass: rank 0 exits non-zero
    within distributed.timeout_s (10 s) plus a margin, with an error naming rank 1. Run again on
    2 ranks, the job ends with the summary and predictions of a job never disturbed; run again
    in one process, with the same cache. And once in the student's training, resumed on 2 ranks
    from rank 0's last state.
(f) Ranks that read different data (the same config, relative paths, on "two machines") stop
    with an error naming the rank, rather than mixing outputs.
(e) `muki sweep` on 2 ranks (2 values of tau x 2 seeds: two runs a rank) writes the table of the
    same sweep in one process.

Python, like the fault-injection test: process control (two ranks, a SIGKILL at a moment read
from a rank's log) and file comparison. Ranks run one thread each: the machine has two cores.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Debian's python3-torch: torchrun and reading weights.pt. (`python3` on PATH may be another.)
TORCH_PYTHON = "/usr/bin/python3"
TIMEOUT_S = 180  # one muki process or job; only against hangs
DIST_TIMEOUT_S = 10  # [distributed] timeout_s of the configs

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, flush=True)
    return condition


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(rank=None, world=None, port=None):
    e = dict(os.environ)
    e.pop("MUKI_PLUGIN_PATH", None)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        e.pop(name, None)
    e["OMP_WAIT_POLICY"] = "PASSIVE"
    if rank is not None:
        e.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                 MASTER_PORT=str(port))
    return e


class Work:
    def __init__(self, muki, source, root):
        self.muki, self.root = muki, root
        self.data = source / "data" / "ddtp-en"
        rows = (self.data / "test.tsv").read_text(encoding="utf-8").splitlines(True)
        (root / "dev.tsv").write_text(rows[0] + "".join(rows[1::2]), encoding="utf-8")
        (root / "test.tsv").write_text(rows[0] + "".join(rows[2::2]), encoding="utf-8")

    def teachers_toml(self, out, dropout):
        entries = ""
        for name, labels in (("media", '["games", "sound", "graphics", "text"]'),
                             ("science", '["science", "math", "net", "admin"]')):
            entries += (f'[[teacher]]\nname = "{name}"\noutput = "{out / name}"\nlabels = {labels}\n'
                        'seed = 1\ndevice = "cpu"\nthreads = 1\n')
        return entries + (
            f'[data]\ntrain = {{ path = "{self.data / "train.tsv"}", label = "label" }}\n'
            f'dev = {{ path = "{self.data / "dev.tsv"}", label = "label" }}\n'
            '[tokenizer]\nvocab_size = 2000\n'
            f'[model]\ntype = "bag_of_embeddings"\nhidden = 32\nmax_length = 64\ndropout = {dropout}\n'
            '[train]\nepochs = 2\nbatch_size = 32\nlr = 1e-2\neval_every = 0\n')

    def experiment_toml(self, teachers, transfer, samples, student_dropout):
        r = self.root
        return (
            '[experiment]\nname = "dist"\nseed = 3\ndevice = "cpu"\nthreads = 1\ndeterministic = true\n'
            f'output_dir = "{r / "runs" / "unnamed"}"\ncache_dir = "{r / "caches" / "unnamed"}"\n'
            f'[data]\ntransfer = {{ path = "{transfer}" }}\n'
            f'dev = {{ path = "{r / "dev.tsv"}", label = "label" }}\n'
            f'test = {{ path = "{r / "test.tsv"}", label = "label" }}\n'
            f'[[teachers]]\nname = "media"\nadapter = "native"\noptions = {{ checkpoint = "{teachers / "media"}" }}\n'
            f'[[teachers]]\nname = "science"\nadapter = "native"\noptions = {{ checkpoint = "{teachers / "science"}" }}\n'
            f'[uncertainty]\nstrategy = "mc_dropout"\noptions = {{ samples = {samples} }}\n'
            '[integration]\nstrategy = "weighted"\noptions = { tau = 0.2, margin_reweighting = true }\n'
            '[student]\ntokenizer = { vocab_size = 2000 }\n'
            f'model = {{ type = "bag_of_embeddings", hidden = 32, max_length = 64, dropout = {student_dropout} }}\n'
            'train = { epochs = 4, batch_size = 32, lr = 1e-2, eval_every = 10, patience = 0 }\n'
            f'[distributed]\nchunk_size = 64\ntimeout_s = {DIST_TIMEOUT_S}\n')

    def run_args(self, config, name):
        return [str(self.muki), "run", str(config), "--log-level", "info",
                "--set", f'experiment.output_dir="{self.root / "runs" / name}"',
                "--set", f'experiment.cache_dir="{self.root / "caches" / name}"']

    def run_dir(self, name):
        return self.root / "runs" / name

    def cache(self, name):
        return self.root / "caches" / name / "teacher-pass"


def alone(args, log):
    with open(log, "wb") as out:
        return subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, env=env(), timeout=TIMEOUT_S).returncode


def start_ranks(args, logs, world=2):
    """The ranks of one job, started at once; their Popen objects."""
    port = free_port()
    procs = []
    for rank in range(world):
        out = open(logs[rank], "wb")
        procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env(rank, world, port)))
        out.close()
    return procs


def job(args, logs, world=2):
    """Runs a job to the end; every rank's exit code."""
    procs = start_ranks(args, logs, world)
    return [p.wait(timeout=TIMEOUT_S) for p in procs]


def text(path):
    return Path(path).read_text(errors="replace")


def cache_files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("chunk-*.bin"))}


def same_cache(what, got, want):
    a, b = cache_files(got), cache_files(want)
    check(a.keys() == b.keys() and len(a) > 0,
          f"{what}: chunk files differ: {sorted(set(a) ^ set(b))[:6]} ({len(a)} vs {len(b)})")
    differ = [k for k in a.keys() & b.keys() if a[k] != b[k]]
    check(not differ, f"{what}: {len(differ)} chunk files differ in content, e.g. {differ[:3]}")


VOLATILE = {"run_dir", "world_size", "backend", "train.resumed_from_step", "teacher_pass.chunks_cached",
            "teacher_pass.chunks_computed", "teacher_pass.samples_drawn", "teacher_pass.samples_asked"}


def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def results(run_dir):
    return {k: v for k, v in summary(run_dir).items() if k not in VOLATILE and "seconds" not in k}


def max_weight_difference(a, b):
    """max |a - b| over the parameters of two weights.pt archives (Debian's torch reads them)."""
    code = ("import sys, torch\n"
            "a = dict(torch.jit.load(sys.argv[1]).named_parameters())\n"
            "b = dict(torch.jit.load(sys.argv[2]).named_parameters())\n"
            "assert a.keys() == b.keys() and a, (sorted(a), sorted(b))\n"
            "print(max(float((a[k] - b[k]).abs().max()) for k in a))\n")
    out = subprocess.run([TORCH_PYTHON, "-c", code, str(a), str(b)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=120)
    if not check(out.returncode == 0, f"reading {a} and {b} failed: {out.stdout.decode()[-800:]}"):
        return float("inf")
    return float(out.stdout.decode().split()[-1])


def equal_runs(w, config):
    """(a), (b): one process, then 2 ranks, of the same config."""
    check(alone(w.run_args(config, "alone"), w.root / "alone.log") == 0, "the single-process run failed:\n" +
          text(w.root / "alone.log")[-3000:])
    logs = [w.root / f"two.{r}.log" for r in range(2)]
    codes = job(w.run_args(config, "two"), logs)
    if not check(codes == [0, 0], f"the 2-rank run exited with {codes}:\n" + text(logs[0])[-2000:] + text(logs[1])[-2000:]):
        return
    same_cache("2 ranks vs 1 process", w.cache("two"), w.cache("alone"))
    two, one = w.run_dir("two"), w.run_dir("alone")
    s = summary(two)
    check(s.get("world_size") == 2 and s.get("backend") == "gloo",
          f"summary.json: world_size {s.get('world_size')}, backend {s.get('backend')}")
    run_json = json.loads((two / "run.json").read_text())
    check(run_json.get("world_size") == 2 and run_json.get("backend") == "gloo", f"run.json: {run_json}")
    check(summary(one).get("world_size") == 1 and summary(one).get("backend") == "none",
          "a single process's summary says world_size 1, backend none")
    got, want = results(two), results(one)
    differ = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    check(not differ, "2 ranks vs 1 process: summary.json differs in " +
          ", ".join(f"{k} ({got.get(k)} vs {want.get(k)})" for k in differ[:8]))
    starts = text(two / "metrics.jsonl").count('"event": "start"')
    check(starts == 1, f"metrics.jsonl holds {starts} start events (rank 0 alone writes it)")
    check("rank 1 of 2 done" in text(logs[1]), "rank 1 does not say it is done:\n" + text(logs[1])[-1500:])
    d = max_weight_difference(two / "student" / "weights.pt", one / "student" / "weights.pt")
    check(d <= 1e-5, f"the 2-rank student's weights differ from the single process's by {d} (> 1e-5)")
    print(f"(a, b) 2-rank run == single process: cache identical, student weights within {d:.2e}", flush=True)


def equal_teachers(w):
    """(b) `muki teacher train` on 2 ranks (dropout 0) == one process."""
    for name, world in (("teachers-alone", 1), ("teachers-two", 2)):
        config = w.root / f"{name}.toml"
        config.write_text(w.teachers_toml(w.root / name, 0.0))
        args = [str(w.muki), "teacher", "train", str(config), "--log-level", "info"]
        logs = [w.root / f"{name}.{r}.log" for r in range(world)]
        codes = job(args, logs, world) if world > 1 else [alone(args, logs[0])]
        check(codes == [0] * world, f"{name}: exit codes {codes}:\n" + text(logs[0])[-2000:])
    for teacher in ("media", "science"):
        two, one = w.root / "teachers-two" / teacher, w.root / "teachers-alone" / teacher
        if not check((two / "train_report.json").is_file(), f"2-rank teacher training wrote no {two}/train_report.json"):
            continue
        d = max_weight_difference(two / "weights.pt", one / "weights.pt")
        check(d <= 1e-5, f"teacher {teacher}: 2-rank weights differ from the single process's by {d} (> 1e-5)")
        print(f"(b) teacher {teacher} trained on 2 ranks == single process within {d:.2e}", flush=True)


def torchrun(w, config):
    """(c) torchrun launches the job (torch 1.13's underscored flags; Python 3.11 needs the
    redirect flags, see the README)."""
    args = [TORCH_PYTHON, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
            "--redirects", "9:1", "--tee", "9:1", "--no_python"] + w.run_args(config, "torchrun")
    log = w.root / "torchrun.log"
    code = alone(args, log)
    if check(code == 0, f"torchrun exited with {code}:\n" + text(log)[-3000:]):
        same_cache("torchrun vs 1 process", w.cache("torchrun"), w.cache("alone"))
        check(summary(w.run_dir("torchrun")).get("world_size") == 2, "torchrun: world_size is not 2")
        print("(c) torchrun launched the 2-rank job", flush=True)


def kill_rank1(w, args, name, marker):
    """Starts a 2-rank job, kills rank 1 once its log shows `marker`, and checks how rank 0 ends."""
    logs = [w.root / f"{name}.{r}.log" for r in range(2)]
    procs = start_ranks(args, logs)
    deadline = time.monotonic() + TIMEOUT_S
    while marker not in text(logs[1]) and procs[1].poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if not check(procs[1].poll() is None, f"{name}: rank 1 ended before it could be killed:\n" + text(logs[1])[-2000:]):
        procs[0].kill()
        return
    os.kill(procs[1].pid, signal.SIGKILL)
    killed = time.monotonic()
    procs[1].wait()
    try:
        code = procs[0].wait(timeout=DIST_TIMEOUT_S + 30)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        check(False, f"{name}: rank 0 still runs {DIST_TIMEOUT_S + 30} s after rank 1 was killed")
        return
    waited = time.monotonic() - killed
    out = text(logs[0])
    check(code != 0, f"{name}: rank 0 exited with 0 although rank 1 was killed")
    check("rank 1" in out.splitlines()[-1] if out.strip() else False,
          f"{name}: rank 0's last line does not name rank 1:\n" + out[-1500:])
    check(waited <= DIST_TIMEOUT_S + 15, f"{name}: rank 0 took {waited:.1f} s to exit (timeout {DIST_TIMEOUT_S} s)")
    print(f"(d) {name}: rank 0 exited {code} {waited:.1f} s after rank 1's kill: {out.splitlines()[-1][:200]}", flush=True)


def kill_and_resume(w, teachers):
    """(d) A longer pass (the train split as transfer set, K = 16, 67 chunks a teacher)."""
    config = w.root / "kill.toml"
    # Ten epochs: training lasts long enough (several seconds) to be killed in its middle.
    config.write_text(w.experiment_toml(teachers, w.data / "train.tsv", 16, 0.1).replace("epochs = 4", "epochs = 10"))
    codes = job(w.run_args(config, "kill-straight"), [w.root / f"kill-straight.{r}.log" for r in range(2)])
    if not check(codes == [0, 0], f"the undisturbed 2-rank run exited with {codes}"):
        return
    straight = w.run_dir("kill-straight")
    # In the teacher pass (once rank 1 has finished a chunk of its share), then resumed on 2 ranks
    # and on 1; in the student's training (its first progress line), resumed on 2 ranks.
    for name, marker, rerun_world in (("kill-pass-then-2", "of rank 1's share", 2), ("kill-pass-then-1", "of rank 1's share", 1),
                                      ("kill-training-then-2", "student epoch", 2)):
        args = w.run_args(config, name)
        kill_rank1(w, args, name, marker)
        logs = [w.root / f"{name}.rerun.{r}.log" for r in range(rerun_world)]
        codes = job(args, logs, rerun_world) if rerun_world > 1 else [alone(args, logs[0])]
        if not check(codes == [0] * rerun_world, f"{name}: the rerun exited with {codes}:\n" + text(logs[0])[-2000:]):
            continue
        same_cache(f"{name}: the resumed job's cache vs the undisturbed one's", w.cache(name), w.cache("kill-straight"))
        s = summary(w.run_dir(name))
        check(s.get("teacher_pass.chunks_cached", 0) > 0, f"{name}: the rerun reused no chunk ({s.get('teacher_pass.chunks_cached')})")
        if "training" in name:
            check(s.get("train.resumed_from_step", 0) > 0, f"{name}: the rerun did not resume the student's training")
        if rerun_world == 2:
            got, want = results(w.run_dir(name)), results(straight)
            differ = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            check(not differ, f"{name}: summary.json differs from the undisturbed job's in " +
                  ", ".join(f"{k} ({got.get(k)} vs {want.get(k)})" for k in differ[:8]))
            check((w.run_dir(name) / "predictions.tsv").read_bytes() == (straight / "predictions.tsv").read_bytes(),
                  f"{name}: predictions.tsv differs from the undisturbed job's")
        print(f"(d) {name}: resumed with {s.get('teacher_pass.chunks_cached')} chunks cached, "
              f"test accuracy {s['test.accuracy']:.4f} (undisturbed {summary(straight)['test.accuracy']:.4f})", flush=True)


def sweep(w, config):
    """(e) The runs of a sweep spread over 2 ranks; rank 0 writes the table."""
    tables = {}
    for name, world in (("sweep-alone", 1), ("sweep-two", 2)):
        args = [str(w.muki), "sweep", str(config), "--log-level", "info", "--seeds", "1,2",
                "--grid", "integration.options.tau=0.1,0.3", "--output", str(w.root / name),
                "--set", f'experiment.cache_dir="{w.root / "caches" / name}"']
        logs = [w.root / f"{name}.{r}.log" for r in range(world)]
        codes = job(args, logs, world) if world > 1 else [alone(args, logs[0])]
        if not check(codes == [0] * world, f"{name}: exit codes {codes}:\n" + text(logs[0])[-2000:]):
            return
        tables[name] = (w.root / name / "results.md").read_text()
    runs = [p.parent.name + "/" + p.name for p in sorted((w.root / "sweep-two").glob("*/seed-*")) if (p / "summary.json").exists()]
    check(len(runs) == 4, f"the 2-rank sweep finished {runs}, not 4 runs")
    check("seeds 1, 2" in tables["sweep-two"] and tables["sweep-two"].split("\n", 1)[1] == tables["sweep-alone"].split("\n", 1)[1],
          "the 2-rank sweep's table differs from the single process's:\n" + tables["sweep-two"] + "\n" + tables["sweep-alone"])
    print("(e) the 2-rank sweep wrote the single process's table", flush=True)


def different_data(w, teachers):
    """(f) Rank 1's transfer file differs from rank 0's by one text."""
    rows = (w.data / "dev.tsv").read_text(encoding="utf-8").splitlines(True)
    for machine, text_rows in (("machine0", rows), ("machine1", rows[:-1] + ["x\tg\tnet\ta text only this machine has\n"])):
        folder = w.root / machine
        folder.mkdir()
        (folder / "transfer.tsv").write_text("".join(text_rows), encoding="utf-8")
        (folder / "exp.toml").write_text(w.experiment_toml(teachers, "transfer.tsv", 4, 0.0))
    port, procs, logs = free_port(), [], []
    for rank in range(2):
        logs.append(w.root / f"different.{rank}.log")
        with open(logs[-1], "wb") as out:
            procs.append(subprocess.Popen(w.run_args(w.root / f"machine{rank}" / "exp.toml", "different"), stdout=out,
                                          stderr=subprocess.STDOUT, env=env(rank, 2, port)))
    codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
    check(codes == [1, 1], f"ranks reading different data exited with {codes}")
    for rank in range(2):
        check("rank 1 has other texts or another teacher than rank 0 (" in text(logs[rank]) and " 515 4 4 0 vs " in text(logs[rank]),
              f"rank {rank} does not say that rank 1 read other texts:\n" + text(logs[rank])[-1500:])
    print("(f) ranks reading different data stop, naming rank 1", flush=True)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    muki, source = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    root = Path(tempfile.mkdtemp(prefix="muki-distributed-"))
    started = time.monotonic()
    try:
        w = Work(muki, source, root)
        teachers = root / "teachers"
        (root / "teachers.toml").write_text(w.teachers_toml(teachers, 0.2))
        if not check(alone([str(muki), "teacher", "train", str(root / "teachers.toml")], root / "teachers.log") == 0,
                     "teacher training failed:\n" + text(root / "teachers.log")[-2000:]):
            return 1
        config = root / "experiment.toml"
        config.write_text(w.experiment_toml(teachers, w.data / "dev.tsv", 4, 0.0))
        equal_runs(w, config)
        equal_teachers(w)
        torchrun(w, config)
        sweep(w, config)
        different_data(w, teachers)
        kill_and_resume(w, teachers)
    finally:
        if "--keep" in sys.argv or failures:
            print(f"files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{len(failures)} failure(s) in {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
