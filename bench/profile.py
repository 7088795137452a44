#!/usr/bin/env python3
"""Where the time goes: turns a Chrome trace written by LibTorch's operator profiler (the
benches' --profile FILE) into a table of operators by self time (an operator's time minus the
time of the operators it called, on the same thread), as markdown, and as JSON with --json.

  profile.py TRACE [--top 15] [--json OUT]
"""
import argparse
import collections
import json


def self_times(events):
    """Self time and calls per operator name. Events on one thread nest; each one's children are
    the events that start inside it."""
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_thread[e.get("tid")].append((float(e["ts"]), float(e["dur"]), e["name"]))
    total = collections.Counter()
    calls = collections.Counter()
    wall = 0.0
    for spans in by_thread.values():
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack = []  # [end, name, child time]
        def close(until):
            while stack and stack[-1][0] <= until:
                end, name, child, dur = stack.pop()
                total[name] += dur - child
                if stack:
                    stack[-1][2] += dur
        for start, dur, name in spans:
            close(start)
            if not stack:
                wall += dur
            calls[name] += 1
            stack.append([start + dur, name, 0.0, dur])
        close(float("inf"))
    return total, calls, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json")
    args = parser.parse_args()
    with open(args.trace) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total, calls, wall = self_times(events)
    measured = sum(total.values())
    rows = [{"op": name, "self_ms": us / 1e3, "share": us / measured if measured else 0.0, "calls": calls[name]}
            for name, us in total.most_common()]
    print(f"| operator | self time (ms) | share | calls |\n|---|---:|---:|---:|")
    for r in rows[: args.top]:
        print(f"| {r['op']} | {r['self_ms']:.1f} | {100 * r['share']:.1f}% | {r['calls']} |")
    rest = rows[args.top:]
    if rest:
        print(f"| (the other {len(rest)}) | {sum(r['self_ms'] for r in rest):.1f} | "
              f"{100 * sum(r['share'] for r in rest):.1f}% | {sum(r['calls'] for r in rest)} |")
    print(f"\noperator time {measured / 1e3:.1f} ms (top-level operators: {wall / 1e3:.1f} ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"trace": args.trace, "operator_ms": measured / 1e3, "ops": rows}, f, indent=1)


if __name__ == "__main__":
    main()
