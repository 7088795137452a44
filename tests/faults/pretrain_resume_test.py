#!/usr/bin/env python3
"""`muki pretrain` killed with SIGKILL, then started again, ends with the encoder of a run that was
never disturbed, byte for byte (encoder.pt's checksum), and says where it resumed.

usage: pretrain_resume_test.py MUKI_BINARY

A small corpus of generated sentences and a tiny Transformer (one thread) keep a run to a few
seconds. The kills land at fixed fractions of a straight run's time from its first state to its
end: after the first state was written (so the rerun resumes) and before the end (so there is
something left to do).
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, flush=True)
    return condition


def environment():
    e = dict(os.environ)
    e["OMP_WAIT_POLICY"] = "PASSIVE"
    return e


def write_inputs(work: Path) -> Path:
    rng = random.Random(7)
    words = ("game sound music play graphics image text editor font audio video player arcade puzzle "
             "network server client mail science math data plot admin system disk backup").split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 20))) for _ in range(3000)]
    (work / "corpus.txt").write_text("\n".join(lines) + "\n")
    config = work / "pretrain.toml"
    config.write_text(
        '[pretrain]\noutput = "OUT"\nseed = 3\ndevice = "cpu"\nthreads = 1\n'
        '[data]\ntrain = { path = "corpus.txt", format = "text" }\nheldout_fraction = 0.05\n'
        "[tokenizer]\nvocab_size = 200\n"
        "[model]\nlayers = 1\nhidden = 32\nheads = 2\nffn = 64\nmax_length = 24\n"
        "[train]\nsteps = 150\nbatch_size = 16\nlr = 2e-3\neval_every = 10\n")
    return config


def pretrain(muki, config, out, kill_after=None):
    """Runs muki pretrain into `out`; with kill_after, SIGKILLs it that many seconds after the
    first state file appeared. Returns (exit code, output, seconds from the first state to the
    end). The output goes to a file, so a chatty run never blocks on a full pipe while watched."""
    args = [muki, "pretrain", str(config), "--set", f'pretrain.output="{out}"']
    log = out.parent / (out.name + ".log")
    with open(log, "wb") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=environment(),
                                start_new_session=True)
        state = out / "state" / "pretrain_state.pt"
        deadline = time.monotonic() + 120
        while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first_state = time.monotonic()
        if kill_after is not None:
            time.sleep(kill_after)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=300)
    return proc.returncode, log.read_text(errors="replace"), time.monotonic() - first_state


def main():
    muki = sys.argv[1]
    work = Path(tempfile.mkdtemp(prefix="muki-pretrain-faults-"))
    try:
        config = write_inputs(work)
        straight = work / "straight"
        # The kills land at fractions of the straight run's training after its first state (startup
        # and the vocabulary take as long again and vary with the machine's load).
        code, output, duration = pretrain(muki, config, straight)
        if not check(code == 0, f"the straight run failed:\n{output}"):
            return 1
        expected = (straight / "encoder.pt.checksum").read_text()
        print(f"straight run: {duration:.1f} s from its first state to the end, encoder {expected.strip()}", flush=True)
        for trial, fraction in enumerate((0.0, 0.1, 0.3, 0.6)):
            out = work / f"killed{trial}"
            code, _, _ = pretrain(muki, config, out, kill_after=fraction * duration)
            killed = code == -signal.SIGKILL
            code, second, _ = pretrain(muki, config, out)
            check(code == 0, f"trial {trial}: the rerun failed:\n{second}")
            check(killed, f"trial {trial}: the run ended before the kill (exit {code}); nothing was tested")
            check("resuming at step" in second, f"trial {trial}: the rerun did not resume:\n{second}")
            got = (out / "encoder.pt.checksum").read_text() if (out / "encoder.pt.checksum").exists() else "none"
            check(got == expected, f"trial {trial}: encoder {got.strip()} differs from the straight run's")
            resumed = [line for line in second.splitlines() if "resuming at step" in line]
            print(f"trial {trial}: killed {fraction:.2f} x {duration:.1f} s after the first state; "
                  f"{resumed[0].split('] ')[-1] if resumed else 'no resume'}; encoder {got.strip()}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("FAILED: " + str(len(failures)) if failures else "OK", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
