# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Claim (d) of the teacher-forced evidence, TTT-depth generalisation, as one table: acc@1 per depth (95% cluster-
bootstrap intervals) of the EAGLE-3 / EAGLE-3.1 pairs trained with TTT 1, 2 and 3, and the paired EAGLE-3.1 − EAGLE-3
difference of each pair, from the JSONs `benchmarks/ttt_depth_pairs.sh` writes.

    python benchmarks/ttt_depth_report.py docs/results/teacher-forced-ttt{1,2,3}.json

The pairs are evaluated on the same positions (one cached set of target answers), so rows of different pairs can be
compared too; only the difference within a pair is paired.
"""

import argparse
import json


DEPTHS = (1, 2, 3, 4, 5, 6, 7, 8)


def interval(entry, depth):
    value, (low, high) = entry["value"][depth - 1], entry["ci"][depth - 1]
    return value, low, high


def report(paths) -> str:
    lines = ["| drafter | " + " | ".join(f"depth {d}" for d in DEPTHS) + " |", "|---" * (len(DEPTHS) + 1) + "|"]
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        names = run["drafters"]
        for name in names:
            acc = run["metrics"][name]["acc@1"]
            cells = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in (interval(acc, d) for d in DEPTHS)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for name, diff in run["diff"].items():
            cells = []
            for d in DEPTHS:
                v, lo, hi = interval(diff["acc@1"], d)
                star = " *" if lo > 0 or hi < 0 else ""
                cells.append(f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]{star}")
            lines.append(f"| Δ {name} − {names[0]} | " + " | ".join(cells) + " |")
    positions = run["positions_per_depth"]
    lines.append("")
    lines.append(
        f"acc@1 = share of positions where the drafter's depth-d token is the target's greedy token given the correct "
        f"prefix; {positions[0]}..{positions[-1]} positions per depth; * = the paired interval excludes 0."
    )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("jsons", nargs="+", help="teacher-forced JSONs of the pairs, shortest TTT first")
    print(report(parser.parse_args().jsons))


if __name__ == "__main__":
    main()
