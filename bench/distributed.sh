#!/usr/bin/env bash
# The teacher pass as a distributed job on this machine (issue 13): the quickstart's two teachers,
# K = 16, over the first EXAMPLES texts of ddtp-en's train split, run by `muki run` as
#   one process with 2 threads, and
#   2 ranks with 1 thread each (loopback, Gloo),
# each from an empty cache. Reads the passes' times and the bytes the ranks exchanged from the
# runs' metrics.jsonl (rank 0's teacher_pass events: a job's pass ends when every rank has every
# output), and the student's training time (2 epochs of the quickstart's CNN, data-parallel in the
# job, dev evaluations included) from summary.json; writes build/bench/distributed.json. Needs a
# build; trains the teachers when missing.
#   bench/distributed.sh          EXAMPLES=1024 by default
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${EXAMPLES:-1024}
out=build/bench
mkdir -p "$out"
work=$(mktemp -d /tmp/muki-bench-distributed-XXXXXX)
trap 'rm -rf "$work"' EXIT

build/bin/muki teacher train configs/teachers/quickstart.toml --missing-only --log-level warn
head -n $((examples + 1)) data/ddtp-en/train.tsv > "$work/transfer.tsv"
# The calibration passes are not measured: off.
common=(--log-level warn --set "data.transfer={path=\"$work/transfer.tsv\"}" --set 'uncertainty.calibrate=false'
        --set 'student.train.epochs=2' --set 'distributed.chunk_size=128')
run_dir() { echo "--set experiment.output_dir=\"$work/$1\" --set experiment.cache_dir=\"$work/$1-cache\""; }

# shellcheck disable=SC2046
OMP_WAIT_POLICY=PASSIVE build/bin/muki run configs/quickstart.toml "${common[@]}" $(run_dir alone) \
  --set experiment.threads=2 > /dev/null
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for rank in 0 1; do
  # shellcheck disable=SC2046
  OMP_WAIT_POLICY=PASSIVE RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    build/bin/muki run configs/quickstart.toml "${common[@]}" $(run_dir two) --set experiment.threads=1 > /dev/null &
done
wait

python3 - "$work" "$examples" > "$out/distributed.json" <<'EOF'
import json, sys
work, examples = sys.argv[1], int(sys.argv[2])

def passes(name):
    events = [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl")]
    return [e for e in events if e["event"] == "teacher_pass" and e["split"] == "transfer" and e["samples"] > 0]

def figures(name):
    p = passes(name)
    seconds = sum(e["seconds"] for e in p)
    return {"teachers": len(p), "seconds": round(seconds, 2),
            "examples_per_s": round(sum(e["examples"] for e in p) / seconds, 1),
            "bytes_exchanged": sum(e["bytes_exchanged"] for e in p)}

def training(name):
    s = json.load(open(f"{work}/{name}/summary.json"))
    return {"seconds": round(s["train.seconds"], 2), "steps": s["train.steps"],
            "examples_per_s": round(2 * examples / s["train.seconds"], 1)}

alone, two = figures("alone"), figures("two")
print(json.dumps({
    "what": "teacher pass, quickstart teachers (2-layer Transformers), K = 16, fp32, ddtp-en train texts",
    "examples": examples, "samples": 16,
    "one_process_2_threads": alone, "two_ranks_1_thread_each": two,
    "speedup": round(two["examples_per_s"] / alone["examples_per_s"], 2),
    # Every rank receives every rank's outputs: per teacher and 1,000 examples.
    "bytes_exchanged_per_1000_examples_per_teacher": round(two["bytes_exchanged"] / two["teachers"] / examples * 1000),
    "student_training": {"what": "the quickstart's CNN student, 2 epochs, batch 32, dev evaluations included",
                         "one_process_2_threads": training("alone"), "two_ranks_1_thread_each": training("two")},
}, indent=2))
EOF
cat "$out/distributed.json"
