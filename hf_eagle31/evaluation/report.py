# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Markdown tables of `evaluate`'s results."""

from .calibration import format_number, format_spread, median_range


def _pass_ratios(mine, base):
    """Median and [min, max] over passes of `mine`'s tokens/s over `base`'s, pass by pass."""
    return median_range(
        [
            a / b if a and b else None
            for a, b in zip(mine.get("tokens_per_s_per_pass", ()), base.get("tokens_per_s_per_pass", ()))
        ]
    )


def format_table(results: list[dict], max_depth: int = 6) -> str:
    """
    Markdown: one row per (suite, drafter), followed by per-source rows ("standard/mtbench") when a suite mixes
    sources; `tau ×` and `speed ×` are ratios against the first drafter on the same rows. With several passes,
    tok/s and speed × are medians over passes followed by their (min–max). `drafted/cycle` is the mean number of
    candidates per verifying forward, `wasted` the candidates proposed and rejected (first pass).
    """
    rows = []  # (group label, drafter, summary)
    several_k = len({r.get("num_assistant_tokens") for r in results}) > 1
    for r in results:
        k = f" K={r['num_assistant_tokens']}" if several_k else ""
        rows.append((r["suite"] + k, r["drafter"], r))
        if len(r.get("by_source", {})) > 1:
            rows.extend((f"{r['suite']}/{src}{k}", r["drafter"], sub) for src, sub in r["by_source"].items())
    if not rows:
        return ""
    first = rows[0][1]
    base = {group: summary for group, drafter, summary in rows if drafter == first}
    depth = min(max_depth, max(len(s["acceptance_per_depth"]) for _, _, s in rows))
    head = (
        "| suite | drafter | tau | tau × | tok/s | speed × | "
        + " | ".join(f"acc@{d}" for d in range(1, depth + 1))
        + " | drafted/cycle | wasted |"
    )
    lines = [head, "|---|---|---|---|---|---|" + "---|" * (depth + 2)]
    for group in dict.fromkeys(g for g, _, _ in rows):
        for _, drafter, s in (row for row in rows if row[0] == group):
            b = base.get(group, {})
            tau_x = s["tau"] / b["tau"] if s["tau"] and b.get("tau") else None
            speed_x, speed_spread = _pass_ratios(s, b)
            acc = [s["acceptance_per_depth"][d] if d < len(s["acceptance_per_depth"]) else None for d in range(depth)]
            lines.append(
                f"| {group} | {drafter} | {format_number(s['tau'])} | {format_number(tau_x)} | "
                f"{format_spread(s['tokens_per_s'], s.get('tokens_per_s_range'), '.1f')} | "
                f"{format_spread(speed_x, speed_spread)} | " + " | ".join(format_number(a) for a in acc) + " | "
                f"{format_number(s.get('drafted_per_cycle'))} | {format_number(s.get('wasted_draft_tokens'), 'd')} |"
            )
    return "\n".join(lines)
