# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Acceptance evaluation of drafters on prompt suites: tau and acceptance per chain depth, tokens/s.

Every prompt is answered with `target.generate(..., assistant_model=drafter)`; the generator leaves a
`SpeculationStats` on the drafter, and a suite's numbers pool those of all its prompts:

    tau                    = sum over cycles of (accepted + 1) / number of verifying target forwards
    acceptance_per_depth   [d-1] = cycles whose d-th draft was accepted / cycles that drafted >= d tokens
    conditional_acceptance [d-1] = cycles that accepted >= d / cycles that drafted >= d and accepted >= d-1
    tokens_per_s           = generated tokens / wall time (target + drafter + glue), median over passes

With several drafters they run side by side on each prompt (interleaved, so machine noise hits all of them alike)
and the table gives ratios against the first. Multi-turn prompts (MT-Bench) condition turn 2 on the target's own
answer to turn 1; that answer is generated once (by the first drafter's run, which is lossless) and shared by all
drafters so that each sees the same context.

The prompts run `repeats` times (passes; the statistics come from the first, tokens/s and speed ratios are medians
over passes with their min/max), and a `calibration.Calibration` sampled before and after each pass flags a run
during which the machine got busy.

"""

from collections.abc import Sequence

from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data.suites import EvalPrompt
from ..errors import InputError
from ..loading import check_drafters_fit
from ..modeling import SpeculationStats  # the one definition of tau and acceptance
from ..utils import text_config
from .calibration import Calibration, median_range
from .prompts import render_prompt
from .timing import TargetForwardTimer, timed_generate


def pool_speculation_stats(stats_list: Sequence[SpeculationStats]) -> dict:
    """Pools the SpeculationStats of several generate calls into one suite-level summary (cycles pooled, so tau
    is total accepted + bonus tokens over total verifying forwards, not a mean of per-prompt taus)."""
    pooled = SpeculationStats.pooled(stats_list)
    return {
        "tau": pooled.tau,
        "cycles": pooled.cycles,
        "accepted_tokens": sum(pooled.accepted),
        "acceptance_per_depth": pooled.acceptance_per_depth,
        "conditional_acceptance_per_depth": pooled.conditional_acceptance_per_depth,
        "target_forwards": pooled.target_forwards,
        "drafter_forwards": pooled.drafter_forwards,
        "drafter_time_s": pooled.drafter_time_s,
        "drafted_per_cycle": pooled.drafted_per_cycle,
        "wasted_draft_tokens": pooled.wasted_draft_tokens,
        "copied_cycles": pooled.copied_cycles,
        "shapes": pooled.shape_summary(),  # the auto policy's choices (None for a fixed policy)
    }


def check_context(target: PreTrainedModel, prompt_ids: Sequence[int], max_new_tokens: int, what: str) -> None:
    limit = getattr(text_config(target), "max_position_embeddings", None)
    if limit is not None and len(prompt_ids) + max_new_tokens > limit:
        raise InputError(
            f"{what} has {len(prompt_ids)} tokens + {max_new_tokens} new tokens > the target's context of {limit}: "
            "use shorter prompts (e.g. smaller --long-lengths) or a smaller --max-new-tokens."
        )


def evaluate(
    target: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    drafters: dict[str, PreTrainedModel],
    prompts: list[EvalPrompt],
    max_new_tokens: int = 128,
    num_assistant_tokens: int | Sequence[int] | None = None,
    do_sample: bool = False,
    temperature: float | None = None,
    system_prompt: str | None = None,
    chat_template: str | None = None,
    seed: int = 0,
    progress: bool = True,
    repeats: int = 1,
    calibration: Calibration | None = None,
    policies: dict[str, dict] | None = None,
    drafting: dict | None = None,
) -> tuple[list[dict], list[dict]]:
    """
    Runs every prompt (every turn) with every drafter, interleaved, and pools the statistics per suite.

    drafters: {label: drafter}. prompts: `EvalPrompt`s; results are grouped by `prompt.suite`.
    num_assistant_tokens: the draft length K, or a list of them to measure tau / speed as a function of K
        (None: each drafter's own `generation_config.num_assistant_tokens`).
    repeats: passes over all prompts. The acceptance statistics come from the first pass (the runs are seeded, so
        every pass drafts the same); tokens/s and speed ratios are the median over passes, with their min/max.
    calibration: a `calibration.Calibration`, sampled before the first pass and after each one (the CLI passes
        one; None measures without).
    policies: `{name: generate options}` (see `drafting_policy`): every drafter also runs under each policy, as
        a row labelled `<drafter>:<policy>` (`policy` is set in its result; None for the drafter as shipped).
    drafting: generate options (`drafting_policy(name)`) that every drafter's own row runs with instead of the
        drafter's saved generation_config.json: one policy for drafters saved with different ones.
    Returns `(results, runs)`: one result dict per (K, drafter, policy, suite), and the raw per-turn records (with their
    `repeat`, the pass index).
    """
    if not drafters:
        raise InputError("pass at least one drafter.")
    if not prompts:
        raise InputError("no prompts to evaluate: check --prompts / --suite / --num-prompts.")
    if repeats < 1:
        raise InputError(f"repeats must be >= 1, got {repeats}.")
    ks = list(num_assistant_tokens) if isinstance(num_assistant_tokens, (list, tuple)) else [num_assistant_tokens]
    if any(k is not None and k < 1 for k in ks):
        raise InputError(f"num_assistant_tokens must be >= 1, got {ks}.")
    check_drafters_fit(target, drafters)
    labels = list(drafters)
    policies = dict(policies or {})
    for name in policies:
        if name in drafters or ":" in name:
            raise InputError(f"policy name {name!r} clashes with a drafter label: rename it.")
    settings = [(k, label, policy) for k in ks for label in labels for policy in (None, *policies)]
    options = {None: drafting, **policies}  # the generate options of each row's policy
    runs = []
    history = {}  # prompt index -> the target's answers to its turns (first pass), the context of later turns
    total_turns = sum(len(p.turns) for p in prompts) * repeats
    with TargetForwardTimer(target) as timer:
        # Warm-up (not counted): first-call overheads (allocator, kernels, lazy init) would bias the first drafter.
        warm = render_prompt(tokenizer, prompts[0], (), system_prompt, chat_template)
        for drafter in drafters.values():
            for policy in (None, *policies):
                timed_generate(
                    target,
                    warm,
                    timer,
                    drafter=drafter,
                    max_new_tokens=min(8, max_new_tokens),
                    num_assistant_tokens=ks[0],
                    drafting=options[policy],
                )
    # calibration samples run without the timing hooks, so that every sample times the same code
    if calibration is not None:
        calibration.sample("before")
    with tqdm(total=total_turns, desc="eval", unit="turn", disable=not progress) as bar:
        for repeat in range(repeats):
            with TargetForwardTimer(target) as timer:
                for index, prompt in enumerate(prompts):
                    answers = history.setdefault(index, [])
                    for turn in range(len(prompt.turns)):
                        ids = render_prompt(tokenizer, prompt, answers[:turn], system_prompt, chat_template)
                        check_context(target, ids, max_new_tokens, f"prompt {prompt.id} (turn {turn + 1})")
                        first_answer = None
                        shift = (index + repeat) % len(settings)
                        for k, label, policy in settings[shift:] + settings[:shift]:  # rotate who goes first
                            run = timed_generate(
                                target,
                                ids,
                                timer,
                                drafter=drafters[label],
                                max_new_tokens=max_new_tokens,
                                num_assistant_tokens=k,
                                do_sample=do_sample,
                                temperature=temperature,
                                seed=seed + index,
                                drafting=options[policy],
                            )
                            runs.append(
                                {
                                    "drafter": _row_label(label, policy),
                                    "policy": policy,
                                    "num_assistant_tokens": k,
                                    "suite": prompt.suite,
                                    "source": prompt.source,
                                    "perturbation": (getattr(prompt, "meta", None) or {}).get("perturbation"),
                                    "prompt": prompt.id,
                                    "turn": turn + 1,
                                    "prompt_tokens": len(ids),
                                    "input_ids": ids,
                                    "repeat": repeat,
                                    "run": run,
                                }
                            )
                            if (k, label, policy) == settings[0]:
                                first_answer = run.new_tokens
                        bar.update(1)
                        if repeat == 0:  # the target's own answer (first drafter's run) is the next turn's history
                            answers.append(tokenizer.decode(_strip_eos(first_answer, target), skip_special_tokens=True))
            if calibration is not None:
                calibration.sample(f"after pass {repeat + 1}")
    results = []
    suites = list(dict.fromkeys(p.suite for p in prompts))
    for k, label, policy in settings:
        row = _row_label(label, policy)
        for suite in suites:
            mine = [r for r in runs if r["drafter"] == row and r["num_assistant_tokens"] == k and r["suite"] == suite]
            results.append(
                {
                    "drafter": row,
                    "suite": suite,
                    "num_assistant_tokens": k,
                    **({"policy": policy} if policies else {}),
                    **_summarize(mine),
                    "by_source": {
                        src: _summarize([r for r in mine if r["source"] == src])
                        for src in dict.fromkeys(r["source"] for r in mine)
                    },
                    "per_prompt": [
                        {
                            "prompt": r["prompt"],
                            "turn": r["turn"],
                            "prompt_tokens": r["prompt_tokens"],
                            **r["run"].stats.to_dict(),
                        }
                        for r in mine
                        if r["repeat"] == 0
                    ],
                }
            )
            perturbations = [p for p in dict.fromkeys(r["perturbation"] for r in mine) if p is not None]
            if perturbations:
                results[-1]["by_perturbation"] = {
                    name: _summarize([r for r in mine if r["perturbation"] == name]) for name in perturbations
                }
    for result in results:
        base = next(
            r
            for r in results
            if r["drafter"] == labels[0]
            and r["suite"] == result["suite"]
            and r["num_assistant_tokens"] == result["num_assistant_tokens"]
        )
        result["tau_ratio"] = result["tau"] / base["tau"] if result["tau"] and base["tau"] else None
        ratios = [
            mine / theirs if mine and theirs else None
            for mine, theirs in zip(result["tokens_per_s_per_pass"], base["tokens_per_s_per_pass"])
        ]
        result["speed_ratio"], result["speed_ratio_range"] = median_range(ratios)
    return results, runs


def _row_label(label, policy):
    return label if policy is None else f"{label}:{policy}"


def _summarize(runs):
    """
    Pooled speculation statistics (first pass), speed and counts of a group of per-turn run records:
    `tokens_per_s` is the median over passes of each pass's generated tokens / wall time, `tokens_per_s_range`
    its [min, max]; `wall_s` and `target_time_s` are means per pass.
    """
    passes = sorted({r["repeat"] for r in runs})
    first = [r for r in runs if r["repeat"] == passes[0]]
    speeds = []
    for p in passes:
        wall = sum(r["run"].wall_s for r in runs if r["repeat"] == p)
        new_tokens = sum(len(r["run"].new_tokens) for r in runs if r["repeat"] == p)
        speeds.append(new_tokens / wall if wall else None)
    tokens_per_s, tokens_per_s_range = median_range(speeds)
    return {
        **pool_speculation_stats([r["run"].stats for r in first]),
        "tokens_per_s": tokens_per_s,
        "tokens_per_s_range": tokens_per_s_range,
        "tokens_per_s_per_pass": speeds,
        "new_tokens": sum(len(r["run"].new_tokens) for r in first),
        "wall_s": sum(r["run"].wall_s for r in runs) / len(passes),
        "num_prompts": len({r["prompt"] for r in first}),
        "num_turns": len(first),
        "target_time_s": sum(r["run"].target_time_s for r in runs) / len(passes),
    }


def _strip_eos(tokens, target):
    eos = target.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, (list, tuple)) else [eos]) if eos is not None else set()
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[:i]
    return tokens
