"""Markdown tables for docs/results/teacher-forced.md from the JSON reports of `hf-eagle31 eval --teacher-forced`
(benchmarks/teacher_forced_tables.sh): EAGLE-3 vs EAGLE-3.1 per depth, paired differences, per-group rows.

    python benchmarks/teacher_forced_report.py docs/results/teacher-forced-standard.json [more.json ...]
"""

import json
import sys

from hf_eagle31.evaluation.teacher_forced import format_summary


NAMES = {"smollm2-135m-instruct-eagle3": "EAGLE-3", "smollm2-135m-instruct-eagle3.1": "EAGLE-3.1"}


def renamed(part: dict) -> dict:
    """The summary (or group) with the shipped drafters' folder names shortened to EAGLE-3 / EAGLE-3.1."""
    out = dict(part)
    for key in ("metrics", "diff", "ratio"):
        if key in out:
            out[key] = {NAMES.get(k, k): v for k, v in out[key].items()}
    if "drafters" in out:
        out["drafters"] = [NAMES.get(d, d) for d in out["drafters"]]
    return out


def group_rows(report: dict, metric: str = "acc@1", depths=(1, 3, 5, 7, 8)) -> str:
    """One row per group: each drafter's value and the paired difference (3.1 − 3) at a few depths."""
    first, second = report["drafters"][:2]
    lines = [
        "| group | positions/depth | "
        + " | ".join(f"Δ {metric} d{d}" for d in depths)
        + " | "
        + " | ".join(f"{NAMES.get(x, x)} d{d}" for x in (first, second) for d in (depths[-1],))
        + " |",
        "|---|---|" + "---|" * (len(depths) + 2),
    ]
    for name, part in report.get("groups", {}).items():
        diff = part["diff"][second][metric]
        cells = []
        for d in depths:
            v, (lo, hi) = diff["value"][d - 1], diff["ci"][d - 1]
            cells.append("–" if v is None else f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]" + (" *" if lo > 0 or hi < 0 else ""))
        own = []
        for x in (first, second):
            e = part["metrics"][x][metric]
            v, (lo, hi) = e["value"][depths[-1] - 1], e["ci"][depths[-1] - 1]
            own.append("–" if v is None else f"{v:.3f} [{lo:.3f}, {hi:.3f}]")
        lines.append(f"| {name} | {part['positions_per_depth'][0]} | " + " | ".join(cells + own) + " |")
    return "\n".join(lines)


def main(paths):
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        summary = renamed(report)
        print(format_summary(summary, metrics=["acc@1", "acc@4", "tau_chain", "tau_tree@4"], title=path))
        if report.get("groups"):
            print(f"\nper group ({path}): paired Δ acc@1 (EAGLE-3.1 − EAGLE-3) and acc@1 at depth 8\n")
            print(group_rows(report))
        cost = report["cost"]
        print(
            f"\ncost: answers {cost['answers_cpu_s']:.0f} CPU-s ({report['answer_cache']['misses']} generated), "
            f"teacher-forced part {cost['eval_cpu_s']:.0f} CPU-s, {report['positions_per_depth'][0]} depth-1 "
            f"positions, 2 drafters; target self-consistency {report['target_self_consistency']:.4f}\n"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
