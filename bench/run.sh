#!/usr/bin/env bash
# Runs muki's benchmarks beside two PyTorch references (bench/reference.py: the same models,
# weights and token ids, run the way the authors' scripts run them, and the best plain-PyTorch
# version of the same work) and writes build/bench/results.json with all and their ratios. Needs a build (scripts/test.sh or the
# quickstart) and Debian's python3-torch. Trains the teachers it measures when missing.
#   bench/run.sh            EXAMPLES=512 THREADS=2 by default
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${EXAMPLES:-512}
samples=0,1,4,16   # K = 0: the deterministic pass alone, the floor the stochastic passes are held to
threads=${THREADS:-2}
out=build/bench
mkdir -p "$out"
python=/usr/bin/python3   # Debian's, where python3-torch installs

build/bin/muki teacher train configs/teachers/quickstart.toml --missing-only --log-level warn
build/bin/muki teacher train configs/teachers/heterogeneous.toml --missing-only --log-level warn
data=data/ddtp-en/train.tsv
media=runs/teachers/quickstart/media
science=runs/teachers/quickstart/science
cnn=runs/teachers/heterogeneous/cnn

# The teacher pass: muki (fp32 and bf16), the authors'-style loop, and the best plain-PyTorch
# version (fp32 and bf16). The best version runs with the allocator settings muki sets in-process
# (core::tune_allocator), so that its ratio compares code, not malloc tuning.
for precision in fp32 bf16; do
  build/bin/muki_bench_teacher_pass --checkpoint "$media" --checkpoint "$science" --precision "$precision" \
    --samples "$samples" --data "$data" --examples "$examples" --threads "$threads" --ids-out "$out/teacher_ids.bin" \
    > "$out/teacher_pass.muki.$precision.json"
  MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \
    "$python" bench/reference.py teacher_pass_best --checkpoint "$media" --checkpoint "$science" \
    --precision "$precision" --samples "$samples" --ids "$out/teacher_ids.bin" --examples "$examples" --threads "$threads" \
    > "$out/teacher_pass.best.$precision.json"
done
"$python" bench/reference.py teacher_pass --checkpoint "$media" --checkpoint "$science" \
  --samples "$samples" --ids "$out/teacher_ids.bin" --examples "$examples" --threads "$threads" > "$out/teacher_pass.reference.json"
# Both speed options on: bf16 and adaptive K at the tolerance whose selection cost
# bench/README.md measures over 11 seeds.
build/bin/muki_bench_teacher_pass --checkpoint "$media" --checkpoint "$science" --precision bf16 --adaptive 0.05 \
  --samples 16 --data "$data" --examples "$examples" --threads "$threads" > "$out/teacher_pass.muki.options.json"
# Students in fp32 and with train.precision = "bf16", each beside PyTorch at the same precision.
for model in transformer cnn; do
  checkpoint=$([ "$model" = transformer ] && echo "$media" || echo "$cnn")
  for precision in fp32 bf16; do
    build/bin/muki_bench_student --checkpoint "$checkpoint" --data "$data" --examples "$examples" --precision "$precision" \
      --threads "$threads" --ids-out "$out/student_ids_$model.bin" > "$out/student_$model.muki.$precision.json"
    "$python" bench/reference.py student --checkpoint "$checkpoint" --ids "$out/student_ids_$model.bin" \
      --precision "$precision" --examples "$examples" --threads "$threads" > "$out/student_$model.reference.$precision.json"
  done
done

"$python" - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
load = lambda name: json.load(open(os.path.join(out, name)))
tp_ref = load("teacher_pass.reference.json")
rows = []
for precision in ("fp32", "bf16"):
    tp_muki, tp_best = load(f"teacher_pass.muki.{precision}.json"), load(f"teacher_pass.best.{precision}.json")
    for m, b, r in zip(tp_muki["results"], tp_best["results"], tp_ref["results"]):
        assert (m["teachers"], m["samples"]) == (r["teachers"], r["samples"]) == (b["teachers"], b["samples"])
        rows.append({"precision": precision, "teachers": m["teachers"], "samples": m["samples"],
                     "muki_examples_per_s": m["examples_per_s"], "best_examples_per_s": b["examples_per_s"],
                     "reference_examples_per_s": r["examples_per_s"],
                     "speedup_vs_reference": m["examples_per_s"] / r["examples_per_s"],
                     "speedup_vs_best": m["examples_per_s"] / b["examples_per_s"]})
# One stochastic pass against one deterministic pass of the same texts, from muki's K = 0 and
# K = 16 rows (one teacher): ((1/r16 - 1/r0) / 16) / (1/r0).
stochastic_cost = {}
for precision in ("fp32", "bf16"):
    rate = {row["samples"]: row["muki_examples_per_s"] for row in rows
            if row["precision"] == precision and row["teachers"] == 1}
    if 0 in rate and 16 in rate:
        stochastic_cost[precision] = ((1 / rate[16] - 1 / rate[0]) / 16) / (1 / rate[0])
# The speed options' row: K = 16 with bf16 and adaptive K, against the bf16 K = 16 row's
# authors'-style loop (fp32, exact) and best PyTorch version (bf16, exact: it has no adaptive K).
opt = load("teacher_pass.muki.options.json")
bf16_k16 = {row["teachers"]: row for row in rows if row["precision"] == "bf16" and row["samples"] == 16}
options_rows = [{"teachers": m["teachers"], "samples": m["samples"],
                 "adaptive_tolerance": opt["adaptive_tolerance"],
                 "samples_drawn_fraction": m.get("samples_drawn_fraction", 1.0),
                 "muki_examples_per_s": m["examples_per_s"],
                 "speedup_vs_reference": m["examples_per_s"] / bf16_k16[m["teachers"]]["reference_examples_per_s"],
                 "speedup_vs_best_bf16": m["examples_per_s"] / bf16_k16[m["teachers"]]["best_examples_per_s"]}
                for m in opt["results"]]
students = []
for model in ("transformer", "cnn"):
    for precision in ("fp32", "bf16"):
        m, r = load(f"student_{model}.muki.{precision}.json"), load(f"student_{model}.reference.{precision}.json")
        students.append({"model": m["model"], "precision": precision, "muki_examples_per_s": m["examples_per_s"],
                         "reference_examples_per_s": r["examples_per_s"],
                         "speedup": m["examples_per_s"] / r["examples_per_s"]})
fp32_reference = {s["model"]: s["reference_examples_per_s"] for s in students if s["precision"] == "fp32"}
for s in students:
    s["speedup_vs_fp32_reference"] = s["muki_examples_per_s"] / fp32_reference[s["model"]]
results = {"machine": {"cpus": os.cpu_count(), "threads": tp_ref["threads"],
                       "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(auto)")},
           "examples": tp_ref["examples"],
           "teacher_pass": {"reference": tp_ref, "table": rows, "speed_options": options_rows,
                            "stochastic_pass_cost_vs_deterministic": stochastic_cost},
           "student": {"table": students}}
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=1)
print("teacher pass (examples/s; K stochastic passes + 1 deterministic, per example, all teachers)")
print("| precision | teachers | K | muki | best PyTorch | authors'-style (fp32) | vs best | vs authors' |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for row in rows:
    print(f"| {row['precision']} | {row['teachers']} | {row['samples']} | {row['muki_examples_per_s']:.1f} | "
          f"{row['best_examples_per_s']:.1f} | {row['reference_examples_per_s']:.1f} | "
          f"{row['speedup_vs_best']:.2f}x | {row['speedup_vs_reference']:.2f}x |")
for precision, cost in stochastic_cost.items():
    print(f"{precision}: one stochastic pass costs {cost:.2f}x one deterministic pass of the same texts")
print("\nteacher pass with both speed options (bf16, adaptive K), K = 16")
print("| teachers | tolerance | passes drawn | muki | vs best PyTorch (bf16) | vs authors' (fp32) |\n|---:|---:|---:|---:|---:|---:|")
for row in options_rows:
    print(f"| {row['teachers']} | {row['adaptive_tolerance']} | {100 * row['samples_drawn_fraction']:.1f}% | "
          f"{row['muki_examples_per_s']:.1f} | {row['speedup_vs_best_bf16']:.2f}x | {row['speedup_vs_reference']:.2f}x |")
print("\nstudent training (examples/s, batch 32, AdamW, weighted KL; the reference at the same precision)")
print("| model | precision | muki | PyTorch reference | speed-up | vs the fp32 reference |\n|---|---|---:|---:|---:|---:|")
for row in students:
    print(f"| {row['model']} | {row['precision']} | {row['muki_examples_per_s']:.1f} | {row['reference_examples_per_s']:.1f} | "
          f"{row['speedup']:.2f}x | {row['speedup_vs_fp32_reference']:.2f}x |")
print(f"\nwrote {os.path.join(out, 'results.json')}")
PY
