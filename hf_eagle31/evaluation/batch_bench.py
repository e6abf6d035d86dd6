# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Batched speed benchmark (`hf-eagle31 bench --batch-size 1,4,8,16`): plain batched greedy `generate` vs the drafter
inside `generate` on the same batches, at several batch sizes B, in one run.

The prompts are cut into consecutive batches of B, padded on the left by the tokenizer (as `tokenizer(...,
padding=True)` with `padding_side="left"` gives them to `generate`); a last, shorter batch is left out (a batch of
fewer rows drafts another K, or runs the batch-1 policy), so at each B the first floor(N / B) * B prompts count. Per
batch the methods run back to back in an order that rotates from batch to batch (and from pass to pass), so that a
noisy machine slows all of them alike; one warm-up call per method and batch size runs first and is not counted.
For every (B, method):

    tokens_per_s      real generated tokens summed over the rows (each row's tokens up to and including its first
                      eos; the pad columns after it are not counted) / wall time of the pass's generate calls;
                      median over passes with [min, max], and `speedup_vs_plain` likewise, pass by pass
    tau               tokens per row per verification (pooled over every row's cycles, `SpeculationStats.rows`)
    draft_length      what the drafter drafted per row and cycle, most often (a chain's K or a tree's nodes; 0 =
                      plain batched steps), beside `rule_draft_length`, what the batch rule gives at B > 1 (a
                      greedy batch of a tree drafter drafts trees: the rule then sets nodes per row); at B = 1 the
                      drafter's own policy runs (trees included)

`budgets` adds one method `drafter:budget=N` per value: the same drafter with the batch rule's token budget set to
N (`batch_token_budget`), the measurement that chooses `BATCH_TOKEN_BUDGET` (modeling/batched_decoding.py). It runs
at B > 1 only, and only where its K differs from the drafter's and the budgets' before it (equal K, equal work).

Greedy speculative decoding is lossless: every row must equal plain batched greedy decoding of the same batch (fp32
exactly; in bf16 a verification forward over K + 1 columns is not bit-identical to 1-column forwards, so rare
divergences there are numerics). The report says which batches differed.
"""

import functools
import inspect
import statistics
import sys
import time
from collections import Counter
from contextlib import contextmanager, nullcontext

import torch
from tqdm.auto import tqdm

from ..errors import InputError
from ..modeling import SpeculationStats
from ..modeling.batched_decoding import BATCH_TOKEN_BUDGET, batch_draft_length
from ..utils import device_sync
from .calibration import Calibration, format_calibration, format_spread, median_range
from .evaluate import check_context


def _check_counts(values, what: str, example: str) -> list[int]:
    values = list(values)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{what} {value!r}: pass whole numbers >= 1, e.g. {example}.")
    return values


def check_batch_sizes(batch_sizes) -> list[int]:
    """The batch sizes as a list of ints >= 1, or a one-line InputError."""
    sizes = _check_counts(batch_sizes, "batch size", "--batch-size 1,4,8,16")
    if not sizes:
        raise InputError("no batch size given: pass at least one, e.g. --batch-size 1,4,8,16.")
    return sizes


def check_budgets(budgets) -> list[int]:
    """The batch token budgets as a list of ints >= 1, or a one-line InputError."""
    return _check_counts(budgets, "batch token budget", "--batch-token-budgets 8,16,32")


@contextmanager
def batch_token_budget(budget: int):
    """
    While the block runs, the batch rule drafts K = min(configured K, budget // B - 1) tokens per row (instead of
    `BATCH_TOKEN_BUDGET`). `BatchedChainGenerator` looks `batch_draft_length` up in its module at each `generate`
    call, and every copy of modeling/batched_decoding.py loaded in this process (the package's, a checkpoint's remote
    code) may be the one `generate` runs, so each copy's rule is swapped for the duration.
    """
    check_budgets([budget])
    # the modules that define the generator and the rule (read from their own namespaces: some modules answer any
    # attribute through a module __getattr__)
    modules = [
        m
        for m in list(sys.modules.values())
        if "BatchedChainGenerator" in getattr(m, "__dict__", {})
        and inspect.isfunction(getattr(m, "__dict__", {}).get("batch_draft_length"))
    ]
    saved = [(m, m.batch_draft_length) for m in modules]
    try:
        for module, rule in saved:
            module.batch_draft_length = functools.partial(rule, budget=budget)
        yield
    finally:
        for module, rule in saved:
            module.batch_draft_length = rule


def left_padded_batches(tokenizer, prompts: list[list[int]], batch_size: int) -> list[dict]:
    """Consecutive full batches of `batch_size` prompts (token-id lists; a shorter tail is left out), padded on the
    left by `tokenizer`: each a dict of (B, L) `input_ids` and `attention_mask` tensors (eos pads when the tokenizer
    has no pad token)."""
    old_side, old_pad = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise InputError("the tokenizer has neither a pad nor an eos token to pad batches with: set its pad_token.")
        tokenizer.pad_token = tokenizer.eos_token
    try:
        return [
            dict(tokenizer.pad({"input_ids": prompts[i : i + batch_size]}, padding=True, return_tensors="pt"))
            for i in range(0, len(prompts) - batch_size + 1, batch_size)
        ]
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None:
            tokenizer.pad_token = None


def _eos_ids(target) -> set[int]:
    eos = target.generation_config.eos_token_id
    if eos is None:
        return set()
    return set(eos) if isinstance(eos, (list, tuple)) else {eos}


def _real_rows(new_tokens: torch.Tensor, eos: set[int]) -> list[list[int]]:
    """Each row's generated tokens up to and including its first eos (what follows is padding)."""
    rows = []
    for row in new_tokens.tolist():
        end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
        rows.append(row[:end])
    return rows


@torch.no_grad()
def _timed_batch(target, batch: dict, pad_token_id: int, eos: set[int], max_new_tokens: int, options: dict) -> dict:
    """One batched greedy `generate` call: each row's real new tokens, the wall time and the drafter's stats."""
    inputs = {k: v.to(target.device) for k, v in batch.items()}
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_k=None, top_p=None)
    drafter = options.get("drafter")
    if drafter is not None:
        kwargs["assistant_model"] = drafter
        if options.get("num_assistant_tokens") is not None:
            kwargs["num_assistant_tokens"] = options["num_assistant_tokens"]
    budget = options.get("budget")
    with batch_token_budget(budget) if budget is not None else nullcontext():
        device_sync(target.device)
        start = time.perf_counter()
        out = target.generate(**inputs, pad_token_id=pad_token_id, **kwargs)
        device_sync(target.device)
        wall = time.perf_counter() - start
    rows = _real_rows(out[:, inputs["input_ids"].shape[1] :], eos)
    return {"rows": rows, "wall_s": wall, "stats": drafter.last_speculation_stats if drafter is not None else None}


def _row_stats(stats: SpeculationStats | None) -> list[SpeculationStats]:
    """The per-row records of one call (a batch of 1 keeps a single record)."""
    if stats is None:
        return []
    return list(stats.rows) if stats.rows else [stats]


def batch_benchmark(
    target,
    drafter,
    tokenizer,
    prompts: list[list[int]],
    batch_sizes: list[int],
    max_new_tokens: int = 128,
    num_assistant_tokens: int | None = None,
    budgets: list[int] | None = None,
    warmup_tokens: int = 8,
    repeats: int = 1,
    progress: bool = True,
    calibration: Calibration | None = None,
) -> dict:
    """
    prompts: token-id lists (rendered prompts), cut into batches of each size in `batch_sizes`.
    budgets: batch token budgets to compare (a method `drafter:budget=N` each; see `batch_token_budget`).
    repeats: passes over all batches of every size (speeds are the median over passes, with min/max).

    Returns the result dict written as JSON: `{"results": [one per (batch size, method)], "batch_sizes": [...],
    "budget": BATCH_TOKEN_BUDGET, "outputs_identical": bool, "mismatched": [{"batch_size", "method", "batches"}],
    "repeats": int, "calibration": {...} | None}`.
    """
    batch_sizes = check_batch_sizes(batch_sizes)
    budgets = check_budgets(budgets or [])
    if repeats < 1:
        raise InputError(f"repeats must be >= 1, got {repeats}.")
    if len(prompts) < max(batch_sizes):
        raise InputError(
            f"batch size {max(batch_sizes)} needs at least as many prompts, got {len(prompts)}: raise --num-prompts "
            "or lower --batch-size."
        )
    drafter.check_target(target.config)
    if not drafter.embeddings_ready:
        drafter.load_target_embeddings(target)
    for ids in prompts:
        check_context(target, ids, max_new_tokens, f"a prompt of {len(ids)} tokens")
    config = drafter.generation_config
    configured_k = num_assistant_tokens or config.num_assistant_tokens
    # what the batch rule shrinks: a chain's K, or a tree's nodes per row (a greedy batch of a tree drafter)
    trees = bool(getattr(config, "draft_tree", False)) and getattr(config, "tree_total_tokens", None) is not None
    units = config.tree_total_tokens if trees else configured_k
    eos = _eos_ids(target)
    options = {"plain": {}, "drafter": {"drafter": drafter, "num_assistant_tokens": num_assistant_tokens}}
    for budget in budgets:
        options[f"drafter:budget={budget}"] = {**options["drafter"], "budget": budget}

    def rule(size, method):
        return batch_draft_length(size, units, options[method].get("budget", BATCH_TOKEN_BUDGET))

    # A budget method runs at B > 1 only (B = 1 runs the drafter's own policy) and only where its K differs from the
    # methods before it (the same K is the same computation): size -> methods
    methods = {}
    for size in batch_sizes:
        methods[size] = ["plain", "drafter"]
        for method in list(options)[2:]:
            if size > 1 and all(rule(size, method) != rule(size, m) for m in methods[size][1:]):
                methods[size].append(method)
    batches = {size: left_padded_batches(tokenizer, prompts, size) for size in batch_sizes}
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    # size -> method -> pass -> per-batch runs
    runs = {size: {m: [[] for _ in range(repeats)] for m in methods[size]} for size in batch_sizes}
    for size in batch_sizes:  # warm-up, not counted: each method meets each batch size once
        for method in methods[size]:
            _timed_batch(target, batches[size][0], pad_token_id, eos, warmup_tokens, options[method])
    if calibration is not None:
        calibration.sample("before")
    total = repeats * sum(len(b) for b in batches.values())
    with tqdm(total=total, desc="bench batches", unit="batch", disable=not progress) as bar:
        for repeat in range(repeats):
            for size in batch_sizes:
                order = methods[size]
                for index, batch in enumerate(batches[size]):
                    shift = (index + repeat) % len(order)
                    for method in order[shift:] + order[:shift]:
                        runs[size][method][repeat].append(
                            _timed_batch(target, batch, pad_token_id, eos, max_new_tokens, options[method])
                        )
                    bar.update(1)
            if calibration is not None:
                calibration.sample(f"after pass {repeat + 1}")

    def pass_speed(pass_runs):
        wall = sum(r["wall_s"] for r in pass_runs)
        return sum(len(row) for r in pass_runs for row in r["rows"]) / wall if wall else None

    results, mismatched = [], []
    for size in batch_sizes:
        reference = runs[size]["plain"][0]
        plain_speeds = [pass_speed(p) for p in runs[size]["plain"]]
        for method in methods[size]:
            passes = runs[size][method]
            speeds = [pass_speed(p) for p in passes]
            tps, tps_range = median_range(speeds)
            speedup, speedup_range = median_range([s / p if s and p else None for s, p in zip(speeds, plain_speeds)])
            first = passes[0]
            different = [i for i in range(len(reference)) if any(p[i]["rows"] != reference[i]["rows"] for p in passes)]
            if different:
                mismatched.append({"batch_size": size, "method": method, "batches": different})
            result = {
                "batch_size": size,
                "method": method,
                "tokens_per_s": tps,
                "tokens_per_s_range": tps_range,
                "tokens_per_s_per_pass": speeds,
                "speedup_vs_plain": speedup,
                "speedup_vs_plain_range": speedup_range,
                "prompts": size * len(first),
                "new_tokens": sum(len(row) for r in first for row in r["rows"]),
                "wall_s": statistics.mean(sum(r["wall_s"] for r in p) for p in passes),
                "identical_to_plain": not different,
            }
            if method != "plain":
                budget = options[method].get("budget", BATCH_TOKEN_BUDGET)
                pooled = SpeculationStats.pooled([s for r in first for s in _row_stats(r["stats"])])
                lengths = pooled.draft_lengths
                result.update(
                    {
                        "tau": pooled.tau,
                        "cycles": pooled.cycles,
                        "draft_length": Counter(lengths).most_common(1)[0][0] if lengths else 0,
                        "policy": first[0]["stats"].policy,
                        "budget": budget,
                        # the batch rule's K (at B = 1 the drafter's own policy runs instead)
                        "rule_draft_length": rule(size, method) if size > 1 else None,
                        "drafter_time_s": statistics.mean(sum(r["stats"].drafter_time_s for r in p) for p in passes),
                    }
                )
            else:
                result["tau"] = None
            results.append(result)
    report = {
        "results": results,
        "batch_sizes": batch_sizes,
        "budget": BATCH_TOKEN_BUDGET,
        "budgets": budgets,
        "configured_draft_length": units,
        "drafts_trees": trees,
        "outputs_identical": not mismatched,
        "mismatched": mismatched,
        "repeats": repeats,
        "calibration": calibration.summary() if calibration is not None else None,
    }
    return report


def format_batch_report(report: dict) -> str:
    """The batched benchmark as a markdown table (medians over passes with their min–max), the identity check and
    the calibration line."""
    lines = []
    if report.get("repeats", 1) > 1:
        lines.append(f"{report['repeats']} passes; tok/s and × plain: median (min–max) over passes")
    lines += [
        f"batch rule: {'tree nodes' if report.get('drafts_trees') else 'K'} per row = "
        f"min({report['configured_draft_length']}, budget // B - 1), budget {report['budget']} (BATCH_TOKEN_BUDGET); "
        "B = 1 runs the drafter's own policy",
        "| B | method | tok/s (all rows) | × plain | tau | K | policy | new tokens | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        tau = "—" if r["tau"] is None else f"{r['tau']:.2f}"
        k = "—" if r["method"] == "plain" else str(r["draft_length"])
        lines.append(
            f"| {r['batch_size']} | {r['method']} | {format_spread(r['tokens_per_s'], r['tokens_per_s_range'], '.2f')} "
            f"| {format_spread(r['speedup_vs_plain'], r['speedup_vs_plain_range'], '.2f')} | {tau} | {k} | "
            f"{r.get('policy', '—')} | {r['new_tokens']} | {r['wall_s']:.2f} |"
        )
    if report["outputs_identical"]:
        lines.append("\ngreedy outputs identical to plain batched greedy: yes")
    else:
        where = "; ".join(f"B={m['batch_size']} {m['method']}: batches {m['batches']}" for m in report["mismatched"])
        lines.append(f"\ngreedy outputs identical to plain batched greedy: NO ({where})")
    if report.get("calibration"):
        lines.append(format_calibration(report["calibration"]))
    return "\n".join(lines)
