# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Side-by-side speed benchmark: plain greedy vs HF prompt lookup vs an EAGLE drafter, in one run on real prompts.

Per prompt the three methods run back to back, in an order that rotates from prompt to prompt (and from pass to
pass), so that a noisy machine slows all of them alike; one warm-up call per method runs first and is not counted.
The prompts are run `repeats` times (passes). For every method:

    tokens_per_s      median over passes of generated tokens / wall time of the pass's generate calls, with the
                      [min, max] over passes (`tokens_per_s_range`); `speedup_vs_plain` likewise, from the ratios
                      to plain pass by pass
    tau               tokens per verifying target forward (drafter: pooled `SpeculationStats`; prompt lookup: the
                      same statistic from the target's forward log; plain: null)
    time breakdown    target forwards (forward pre/post hooks on the target), drafter forwards
                      (`SpeculationStats.drafter_time_s`) and the rest (candidate bookkeeping, sampling, generate
                      glue); means per pass

A `calibration.Calibration` (a fixed target forward) is sampled before the first pass and after each one; the
report carries its samples, the machine's load and a warning when it drifted (see `hf_eagle31.calibration`).

With `profile=True` one more drafter pass runs with hooks on the drafter, and `profile_drafter` splits its time
per speculation cycle (target forwards by tokens fed, drafter feed and chain steps, the assisted loop's glue) and
sets it against a bare microbenchmark of the same forwards: the ceiling speed-up at the measured tau,
`tau * t(1) / (mean t(d+1) + f * t_step)` over each cycle's draft length d and the drafter forwards per cycle f
(`tau * t(1) / (t(K+1) + K * t_step)` at a constant K), and the share of it that decoding achieved.

Greedy speculative decoding is lossless, so all methods must produce the same tokens; the benchmark checks it per
prompt and reports mismatches (in bf16, batched verification forwards are not bit-identical to 1-token forwards,
so rare divergences there are numerics, not bugs; fp32 must match exactly).
"""

import inspect
import statistics
import time
from collections import Counter

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from ..errors import InputError
from ..modeling import SpeculationStats, tau_from_forwards  # the one definition of tau and acceptance
from ..utils import device_sync, text_config
from .calibration import Calibration, format_calibration, format_spread, median_range
from .evaluate import check_context, pool_speculation_stats
from .loop_cost import LoopCost, SyncProbe
from .policies import DRAFTING_POLICIES, drafting_policy  # noqa: F401  (also importable from here)
from .timing import ForwardHookTimer, TargetForwardTimer, timed_generate


METHODS = ("plain", "prompt_lookup", "drafter")


def benchmark(
    target,
    drafter,
    prompts: list[list[int]],
    max_new_tokens: int = 128,
    num_assistant_tokens: int | None = None,
    prompt_lookup_tokens: int = 10,
    warmup_tokens: int = 16,
    progress: bool = True,
    repeats: int = 1,
    calibration: Calibration | None = None,
    profile: bool = False,
    policies: dict | None = None,
    profile_policy: str | None = None,
    static_cache: bool = False,
) -> dict:
    """
    prompts: list of token-id lists (rendered prompts).
    repeats: passes over all prompts (speeds are the median over passes, with min/max).
    calibration: a `calibration.Calibration`, sampled before the first pass, after each pass and after the profile
        (the CLI passes one; None measures without).
    profile: also run `profile_drafter` (one more drafter pass with hooks, and the bare microbenchmark).
    policies: `{name: generate options}` (see `drafting_policy`): each adds a method `drafter:<name>`.
    profile_policy: profile that policy (one of `policies`) instead of the drafter as configured.
    static_cache: every method decodes with a static target cache (with `compile_target_generation(target)`
        beforehand, generate compiles the target's forward; the warm-up pays the compilation), plus a method
        `plain:eager`, plain decoding with the usual dynamic cache (never compiled), for the compiled-vs-eager ratio.

    Returns the result dict written as JSON: `{"results": [per-method summary], "per_prompt": [...],
    "outputs_identical": bool, "mismatched_prompts": [...], "repeats": int, "calibration": {...} | None,
    "profile": {...} (with `profile`)}`.
    """
    if repeats < 1:
        raise InputError(f"repeats must be >= 1, got {repeats}.")
    if profile_policy is not None and profile_policy not in (policies or {}):
        raise InputError(f"profile policy {profile_policy!r} is not among the compared policies: add it to --policies.")
    drafter.check_target(target.config)
    if not drafter.embeddings_ready:
        drafter.load_target_embeddings(target)
    options = {
        "plain": {},
        "prompt_lookup": {"prompt_lookup_tokens": prompt_lookup_tokens},
        "drafter": {"drafter": drafter, "num_assistant_tokens": num_assistant_tokens},
    }
    for name, drafting in (policies or {}).items():
        options[f"drafter:{name}"] = {
            "drafter": drafter,
            "num_assistant_tokens": num_assistant_tokens,
            "drafting": drafting,
        }
    for method_options in options.values():
        method_options["static_cache"] = static_cache
    if static_cache:  # the eager reference in the same run: a dynamic cache never triggers generate's compilation
        options = {"plain": options.pop("plain"), "plain:eager": {"static_cache": False}, **options}
    methods = tuple(options)
    for ids in prompts:
        check_context(target, ids, max_new_tokens, f"a prompt of {len(ids)} tokens")
    runs = {m: [[] for _ in range(repeats)] for m in methods}  # method -> pass -> per-prompt runs
    # Warm-up, not counted. A compiled target (static cache) compiles one graph per set of forward arguments and per
    # query length 1 / >= 2; a 2-token call ends on a 1-token forward with each method's own arguments (a drafter
    # left without room drafts nothing), so no method meets a new graph inside the timed passes.
    warmups = (warmup_tokens, 2) if static_cache else (warmup_tokens,)
    with TargetForwardTimer(target) as timer:
        for method in methods:
            for tokens in warmups:
                timed_generate(target, prompts[0], timer, max_new_tokens=tokens, **options[method])
    # calibration samples run without the hooks, so that every sample times the same code
    if calibration is not None:
        calibration.sample("before")
    with tqdm(total=repeats * len(prompts), desc="bench", unit="prompt", disable=not progress) as bar:
        for repeat in range(repeats):
            with TargetForwardTimer(target) as timer:
                for index, ids in enumerate(prompts):
                    shift = (index + repeat) % len(methods)
                    for method in methods[shift:] + methods[:shift]:
                        runs[method][repeat].append(
                            timed_generate(target, ids, timer, max_new_tokens=max_new_tokens, **options[method])
                        )
                    bar.update(1)
            if calibration is not None:
                calibration.sample(f"after pass {repeat + 1}")

    def pass_speed(pass_runs):
        wall = sum(r.wall_s for r in pass_runs)
        return sum(len(r.new_tokens) for r in pass_runs) / wall if wall else None

    plain_speeds = [pass_speed(p) for p in runs["plain"]]
    # a stopping rule or a copy is judged against the same drafter drafting K every cycle, pass by pass
    constant_speeds = [pass_speed(p) for p in runs["drafter:constant"]] if "drafter:constant" in runs else None
    results = []
    for method in methods:
        first = runs[method][0]
        every = [r for pass_runs in runs[method] for r in pass_runs]
        speeds = [pass_speed(p) for p in runs[method]]
        tps, tps_range = median_range(speeds)
        speedup, speedup_range = median_range([s / p if s and p else None for s, p in zip(speeds, plain_speeds)])
        new_tokens = sum(len(r.new_tokens) for r in first)
        forwards = sum(r.target_forwards for r in first)
        drafting = {}
        if method.startswith("drafter"):
            pooled = pool_speculation_stats([r.stats for r in first])
            tau = pooled["tau"]
            drafting = {
                key: pooled[key]
                for key in (  # drafter_forwards: feeds + chain steps
                    "drafted_per_cycle",
                    "drafter_forwards",
                    "wasted_draft_tokens",
                    "copied_cycles",
                )
            }
            if constant_speeds is not None:
                drafting["speedup_vs_constant"], drafting["speedup_vs_constant_range"] = median_range(
                    [s / c if s and c else None for s, c in zip(speeds, constant_speeds)]
                )
        elif method == "prompt_lookup":
            tau = tau_from_forwards([c for r in first for c in r.candidates_per_forward], new_tokens)
        else:
            tau = None
        wall = sum(r.wall_s for r in every) / repeats
        target_s = sum(r.target_time_s for r in every) / repeats
        drafter_s = sum(r.drafter_time_s for r in every) / repeats
        results.append(
            {
                "method": method,
                "tokens_per_s": tps,
                "tokens_per_s_range": tps_range,
                "tokens_per_s_per_pass": speeds,
                "tau": tau,
                "speedup_vs_plain": speedup,
                "speedup_vs_plain_range": speedup_range,
                "new_tokens": new_tokens,
                "wall_s": wall,
                "target_forwards": forwards,
                "tokens_per_target_forward": new_tokens / forwards if forwards else None,
                "time_breakdown_s": {
                    "target_forwards": target_s,
                    "drafter_forwards": drafter_s,
                    "other": max(wall - target_s - drafter_s, 0.0),
                },
                **drafting,
            }
        )
    reference = runs["plain"][0]
    mismatched = [
        i
        for i in range(len(prompts))
        if any(p[i].new_tokens != reference[i].new_tokens for m in methods for p in runs[m])
    ]
    per_prompt = [
        {
            "prompt_tokens": len(ids),
            **{
                m: {
                    "new_tokens": len(runs[m][0][i].new_tokens),
                    "wall_s": statistics.median(p[i].wall_s for p in runs[m]),
                    "tau": runs[m][0][i].tau,
                    "identical_to_plain": all(p[i].new_tokens == reference[i].new_tokens for p in runs[m]),
                }
                for m in methods
            },
        }
        for i, ids in enumerate(prompts)
    ]
    report = {
        "results": results,
        "outputs_identical": not mismatched,
        "mismatched_prompts": mismatched,
        "per_prompt": per_prompt,
        "repeats": repeats,
    }
    if profile:
        profiled = "drafter" if profile_policy is None else f"drafter:{profile_policy}"
        report["profile"] = profile_drafter(
            target,
            drafter,
            prompts,
            max_new_tokens=max_new_tokens,
            num_assistant_tokens=num_assistant_tokens,
            achieved_speedup=results[methods.index(profiled)]["speedup_vs_plain"],
            drafting=policies[profile_policy] if profile_policy is not None else None,
        )
        report["profile"]["method"] = profiled
        if calibration is not None:
            calibration.sample("after profile")
    report["calibration"] = calibration.summary() if calibration is not None else None
    return report


# ---------------------------------------------------------------------------------------------- profile


class DrafterForwardTimer(ForwardHookTimer):
    """
    Times every forward of the drafter and sorts the calls by kind: `feed` (called with `target_hidden_states`: the
    block of verified positions after a target forward), `chain` (called with `hidden_states`: one drafted token) or
    `other`. Use as a context manager; `times_s[kind]` lists the durations.
    """

    KINDS = ("feed", "chain", "other")

    def __init__(self, drafter):
        super().__init__(drafter)
        parameters = list(inspect.signature(drafter.forward).parameters)
        self._position = {
            name: parameters.index(name) for name in ("hidden_states", "target_hidden_states") if name in parameters
        }
        self.times_s = {kind: [] for kind in self.KINDS}
        self._kind = None

    def _given(self, name, args, kwargs):
        if kwargs.get(name) is not None:
            return True
        position = self._position.get(name)
        return position is not None and position < len(args) and args[position] is not None

    def _started(self, args, kwargs):
        if self._given("target_hidden_states", args, kwargs):
            self._kind = "feed"
        elif self._given("hidden_states", args, kwargs):
            self._kind = "chain"
        else:
            self._kind = "other"

    def _finished(self, seconds):
        self.times_s[self._kind].append(seconds)


def _cache_keyword(model):
    """The name of `model.forward`'s cache argument: `cache` (transformers >= 5.24) or `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _new_cache(config):
    try:
        return DynamicCache(config=config)
    except TypeError:
        return DynamicCache()


def _interleaved_median_ms(workloads: dict, repeats: int, cuda: bool) -> dict:
    """
    Median milliseconds of each workload over `repeats` rounds; `workloads` maps a name to `(call, reset)`, and
    `reset()` runs after each call. Every round times every workload once, in turn (after one untimed round), so
    that a machine that slows down or speeds up during the measurement shifts all of them alike instead of the
    ones that happened to run at that moment.
    """
    times = {name: [] for name in workloads}
    for round_index in range(repeats + 1):
        for name, (call, reset) in workloads.items():
            if cuda:
                device_sync("cuda")
            start = time.perf_counter()
            call()
            if cuda:
                device_sync("cuda")
            if round_index:
                times[name].append(time.perf_counter() - start)
            reset()
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def chain_step_weight_mb(drafter) -> float:
    """MB of weights one chain step reads: the decoder layers, the final norm and lm_head (of the embeddings it reads
    one row; the feature projection it does not use)."""
    modules = [*drafter.layers, drafter.norm, drafter.lm_head]
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters()) / 1e6


@torch.no_grad()
def bare_forward_times(
    target, drafter, token_ids: list[int], context_length: int, max_new_tokens: int, repeats: int = 15
) -> dict:
    """
    The bare microbenchmark of `profile_drafter`: medians in ms over `repeats` rounds (each round times every
    workload once, in turn) of

        target_ms[n]     a target forward of n = 1..max_new_tokens new tokens over a cache of `context_length`
                         tokens (a DynamicCache prefilled once and cropped back after each call; all logits, no
                         hidden-state capture, no attention mask);
        drafter_step_ms  one drafter chain step: a forward of 1 token with `hidden_states` against a drafter cache
                         fed with the target's features of the `context_length` positions (cropped back likewise);
        drafter_step_weight_mb  `chain_step_weight_mb(drafter)`, so that weight_mb / drafter_step_ms is the memory
                         bandwidth a weight-bound step runs at.

    token_ids: at least `context_length + max_new_tokens` token ids (content does not matter for the timing).
    """
    if len(token_ids) < context_length + max(max_new_tokens, 2):
        raise InputError(
            f"bare_forward_times needs {context_length + max(max_new_tokens, 2)} token ids, got "
            f"{len(token_ids)}: pass a longer sequence or a shorter context_length."
        )
    cuda = target.device.type == "cuda"
    ids = torch.as_tensor(token_ids, device=target.device).reshape(1, -1)
    cache_name = _cache_keyword(target)
    cache = _new_cache(target.config)
    out = target(input_ids=ids[:, :context_length], use_cache=True, output_hidden_states=True, **{cache_name: cache})
    features = [out.hidden_states[i].to(drafter.device) for i in drafter.config.target_layer_ids]
    drafter_cache = _new_cache(None)
    fed = drafter(
        ids[:, 1 : context_length + 1].to(drafter.device),
        target_hidden_states=features,
        position_ids=torch.arange(context_length, device=drafter.device)[None],
        cache=drafter_cache,
        logits_to_keep=1,
    )
    hidden = fed.next_hidden[:, -1:]
    token = ids[:, context_length + 1 : context_length + 2].to(drafter.device)
    position = torch.tensor([[context_length]], device=drafter.device)

    def target_forward(n):  # n new tokens over the cache, then cropped back to the context
        block = ids[:, context_length : context_length + n]
        return lambda: target(input_ids=block, use_cache=True, **{cache_name: cache}), lambda: cache.crop(-n)

    workloads = {n: target_forward(n) for n in range(1, max_new_tokens + 1)}
    workloads["step"] = (
        lambda: drafter(token, hidden_states=hidden, position_ids=position, cache=drafter_cache),
        lambda: drafter_cache.crop(-1),
    )
    medians = _interleaved_median_ms(workloads, repeats, cuda)
    step_ms = medians.pop("step")
    target_ms = medians
    if (cache.get_seq_length(), drafter_cache.get_seq_length()) != (context_length, context_length):
        raise RuntimeError("bare_forward_times: a cache was not cropped back to the context; the timings are void.")
    return {
        "context_tokens": context_length,
        "repeats": repeats,
        "target_ms": target_ms,
        "drafter_step_ms": step_ms,
        "drafter_step_weight_mb": chain_step_weight_mb(drafter),
    }


def _part(calls, total_s, cycles, wall_s):
    return {
        "calls": calls,
        "total_s": total_s,
        "ms_per_call": 1e3 * total_s / calls if calls else None,
        "ms_per_cycle": 1e3 * total_s / cycles if cycles else None,
        "share_of_wall": total_s / wall_s if wall_s else None,
    }


@torch.no_grad()
def profile_drafter(
    target,
    drafter,
    prompts: list[list[int]],
    max_new_tokens: int = 128,
    num_assistant_tokens: int | None = None,
    achieved_speedup: float | None = None,
    repeats: int = 15,
    drafting: dict | None = None,
) -> dict:
    """
    Splits the time of one drafter pass over `prompts` (token-id lists) per speculation cycle, and sets it against a
    bare microbenchmark of the same forwards (`bare_forward_times`) in the same process.

    Parts (each with calls, total seconds, ms per call, ms per cycle and share of the pass's wall time):
        target: one entry per number of new tokens fed ("prefill" for each call's first forward; K+1 for a
            verification of K candidates, 1 for a plain step), timed with hooks on the target;
        drafter feed / chain step: hooks on the drafter, sorted by `DrafterForwardTimer`;
        drafter other: the generator's time around its forwards (`SpeculationStats.drafter_time_s` minus both);
        glue: the assisted loop's own time (wall minus target forwards minus `drafter_time_s`).

    With the bare times t(n) over the run's mean context and t_step (`bare_forward_times`, median of `repeats`
    runs each), the ceiling speed-up at the measured tau is `tau * t(1) / (mean_c t(d_c + 1) + f * t_step)`: d_c is
    cycle c's draft length and f the drafter forwards per cycle (the feed and the chain steps). At a constant draft
    length K that is the familiar `tau * t(1) / (t(K+1) + K * t_step)`; with confidence-bounded or copied drafts it
    charges each cycle what it really verified and ran. K (reported) is the draft length most cycles used. With
    `achieved_speedup` (the benchmark's drafter vs plain), `fraction_of_ceiling` is achieved / ceiling.
    `stopping_rule_bound` = (mean_c t(d_c + 1) + f * t_step) / (t(2) + t_step): the most any rule that only stops
    drafts early (e.g. a confidence threshold) could gain over this run in tokens/s — at best it drafts one token a
    cycle (one verification of 2 tokens, the feed as the only drafter forward) and it never raises tau.
    `drafting`: `generate` options of a drafting policy to profile (default: the drafter as configured).
    """
    runs = []
    loop = LoopCost()  # host/device synchronisations outside the forwards (evaluation/loop_cost.py)
    with (
        TargetForwardTimer(target) as timer,
        DrafterForwardTimer(drafter) as drafter_timer,
        SyncProbe(target, drafter, loop),
    ):
        for ids in prompts:
            runs.append(
                timed_generate(
                    target,
                    ids,
                    timer,
                    drafter=drafter,
                    max_new_tokens=max_new_tokens,
                    num_assistant_tokens=num_assistant_tokens,
                    drafting=drafting,
                )
            )
    stats = [r.stats for r in runs]
    pooled = SpeculationStats.pooled(stats)
    cycles = pooled.cycles
    if cycles == 0:
        raise InputError("the profiled drafter run verified no candidates: raise --max-new-tokens so that it drafts.")
    tau = pooled.tau
    lengths = [k for s in stats for k in s.draft_lengths]
    k = Counter(lengths).most_common(1)[0][0]
    longest_draft = max(lengths)
    wall = sum(r.wall_s for r in runs)

    by_tokens = {}  # "prefill" or n new tokens -> durations
    for r in runs:
        for i, (q, t) in enumerate(zip(r.query_lengths, r.forward_times_s)):
            by_tokens.setdefault("prefill" if i == 0 else q, []).append(t)
    order = ["prefill"] + sorted(key for key in by_tokens if key != "prefill")
    target_parts = [
        {"new_tokens": key, **_part(len(by_tokens[key]), sum(by_tokens[key]), cycles, wall)}
        for key in order
        if key in by_tokens
    ]
    target_s = sum(r.target_time_s for r in runs)
    drafter_s = sum(s.drafter_time_s for s in stats)
    feed, chain = drafter_timer.times_s["feed"], drafter_timer.times_s["chain"]
    hooked = sum(len(v) for v in drafter_timer.times_s.values())
    counted = sum(s.drafter_forwards for s in stats)
    drafter_parts = {
        "feed": _part(len(feed), sum(feed), cycles, wall),
        "chain_step": _part(len(chain), sum(chain), cycles, wall),
        "other": _part(None, drafter_s - sum(feed) - sum(chain), cycles, wall),
        "forwards_seen_by_hooks": hooked,
        "forwards_counted_by_generator": counted,
    }
    glue = _part(None, wall - target_s - drafter_s, cycles, wall)
    host_ms = 1e3 * (wall - target_s - sum(feed) - sum(chain)) / cycles  # everything outside the model forwards
    loop_summary = {
        "host_ms_per_cycle": host_ms,
        "syncs_per_cycle": loop.syncs / cycles,
        "forward_syncs_per_cycle": loop.forward_syncs / cycles,
        "sync_sites": dict(sorted(loop.sync_sites.items())),
    }

    # the bare microbenchmark, over the run's mean context (cache length), on the longest run's own tokens
    context = round(statistics.mean(len(ids) + len(r.new_tokens) / 2 for ids, r in zip(prompts, runs)))
    limit = getattr(text_config(target), "max_position_embeddings", None)
    if limit is not None:
        context = min(context, limit - longest_draft - 2)
    longest = max((list(ids) + r.new_tokens for ids, r in zip(prompts, runs)), key=len)
    tokens = (longest * (1 + (context + longest_draft + 2) // len(longest)))[: context + longest_draft + 2]
    bare = bare_forward_times(target, drafter, tokens, context, longest_draft + 1, repeats=repeats)
    t1, step = bare["target_ms"][1], bare["drafter_step_ms"]
    verify = statistics.mean(bare["target_ms"][d + 1] for d in lengths)  # mean bare verification per cycle
    forwards_per_cycle = counted / cycles
    ceiling = tau * t1 / (verify + forwards_per_cycle * step)
    stopping_bound = (verify + forwards_per_cycle * step) / (bare["target_ms"][2] + step)  # t(2): every run drafts
    return {
        "prompts": len(prompts),
        "cycles": cycles,
        "tau": tau,
        "num_assistant_tokens": k,
        "mean_draft_length": statistics.mean(lengths),
        "longest_draft_length": longest_draft,
        "drafter_forwards_per_cycle": forwards_per_cycle,
        "mean_bare_verify_ms": verify,
        "mean_context_tokens": context,
        "wall_s": wall,
        "cycle_ms": 1e3 * wall / cycles,
        "target": target_parts,
        "drafter": drafter_parts,
        "glue": glue,
        "loop": loop_summary,
        "bare": bare,
        "ceiling_speedup": ceiling,
        "achieved_speedup": achieved_speedup,
        "fraction_of_ceiling": achieved_speedup / ceiling if achieved_speedup else None,
        "stopping_rule_bound": stopping_bound,
    }


def format_profile(profile: dict) -> str:
    """The profile as a markdown table of parts per cycle, then the bare times and the ceiling."""
    k, cycles = profile["num_assistant_tokens"], profile["cycles"]
    longest = profile.get("longest_draft_length", k)
    # constant K (the most common length is the longest): "at K=3"; confidence-bounded or copied drafts vary: their
    # longest, mean and most common length
    drafts = (
        f"at K={k}"
        if longest == k
        else f"with drafts of ≤{longest} tokens (mean {profile['mean_draft_length']:.2f}, most often {k})"
    )
    lines = [
        f"profile: {profile.get('method', 'drafter')} {drafts} over {profile['prompts']} prompts: {cycles} cycles, "
        f"τ {profile['tau']:.2f}, "
        f"mean context {profile['mean_context_tokens']} tokens, {profile['cycle_ms']:.2f} ms per cycle",
        "| part | calls | ms/call | ms/cycle | share of wall |",
        "|---|---|---|---|---|",
    ]

    def row(name, part):
        calls = "—" if part["calls"] is None else str(part["calls"])
        per_call = "—" if part["ms_per_call"] is None else f"{part['ms_per_call']:.3f}"
        lines.append(
            f"| {name} | {calls} | {per_call} | {part['ms_per_cycle']:.3f} | {100 * part['share_of_wall']:.1f}% |"
        )

    for part in profile["target"]:
        n = part["new_tokens"]
        row("target prefill" if n == "prefill" else f"target forward, {n} new token{'s' if n > 1 else ''}", part)
    drafter = profile["drafter"]
    row("drafter feed (verified positions)", drafter["feed"])
    row("drafter chain step", drafter["chain_step"])
    row("drafter, around its forwards", drafter["other"])
    row("speculation loop glue", profile["glue"])
    if "loop" in profile:
        loop = profile["loop"]
        lines.append(
            f"loop on the host: {loop['host_ms_per_cycle']:.3f} ms per cycle outside the model forwards, "
            f"{loop['syncs_per_cycle']:.2f} device reads per cycle ({loop['forward_syncs_per_cycle']:.2f} inside the "
            f"forwards; sites {loop['sync_sites']})"
        )
    if drafter["forwards_seen_by_hooks"] != drafter["forwards_counted_by_generator"]:
        lines.append(
            f"(hooks saw {drafter['forwards_seen_by_hooks']} drafter forwards, the generator counted "
            f"{drafter['forwards_counted_by_generator']}: the rest is in 'around its forwards')"
        )
    bare = profile["bare"]
    t = bare["target_ms"]
    lines.append(
        f"bare forwards over a {bare['context_tokens']}-token cache (median of {bare['repeats']}): target "
        + ", ".join(f"t({n}) {ms:.3f} ms" for n, ms in t.items())
        + f"; drafter chain step t_step {bare['drafter_step_ms']:.3f} ms"
        + f" reading {bare['drafter_step_weight_mb']:.1f} MB of weights "
        f"({bare['drafter_step_weight_mb'] / bare['drafter_step_ms']:.1f} GB/s)"
    )
    ceiling = (
        f"ceiling speed-up at τ {profile['tau']:.2f}: τ·t(1) / (mean t(d+1) + f·t_step) = "
        f"{profile['tau']:.2f}·{t[1]:.2f} / ({profile['mean_bare_verify_ms']:.2f} + "
        f"{profile['drafter_forwards_per_cycle']:.2f}·{bare['drafter_step_ms']:.2f}) = "
        f"{profile['ceiling_speedup']:.2f}× (d: each cycle's draft length, mean "
        f"{profile['mean_draft_length']:.2f}; f: drafter forwards per cycle)"
    )
    if profile["achieved_speedup"] is not None:
        ceiling += (
            f"; achieved {profile['achieved_speedup']:.2f}× = {100 * profile['fraction_of_ceiling']:.0f}% "
            "of the ceiling"
        )
    lines.append(ceiling)
    lines.append(
        f"stopping drafts early (e.g. a confidence threshold) can gain at most (mean t(d+1) + f·t_step) / "
        f"(t(2) + t_step) = {profile['stopping_rule_bound']:.2f}× over this run (one drafted token a cycle, "
        "tau no higher)"
    )
    return "\n".join(lines)


def format_report(report: dict) -> str:
    """The benchmark as a markdown table (medians over passes with their min–max), the identity check, the
    calibration line (and its WARNING when flagged) and, when profiled, the profile."""
    lines = []
    # with a constant-K policy in the run, drafter rows also get their ratio to it (pass by pass)
    vs_constant = any("speedup_vs_constant" in r for r in report["results"])
    if report.get("repeats", 1) > 1:
        ratios = "× plain, × constant" if vs_constant else "× plain"
        lines.append(f"{report['repeats']} passes; tok/s and {ratios}: median (min–max) over passes")
    constant_column = " × constant |" if vs_constant else ""
    lines += [
        f"| method | tok/s | × plain |{constant_column} tau | drafted/cycle | rejected | copied cycles | "
        "target fwd s | drafter s | other s |",
        "|---|---|---|" + ("---|" if vs_constant else "") + "---|---|---|---|---|---|---|",
    ]

    def count(r, key, spec="d"):
        return "—" if r.get(key) is None else format(r[key], spec)

    for r in report["results"]:
        t = r["time_breakdown_s"]
        lines.append(
            f"| {r['method']} | {format_spread(r['tokens_per_s'], r.get('tokens_per_s_range'), '.2f')} | "
            f"{format_spread(r['speedup_vs_plain'], r.get('speedup_vs_plain_range'), '.2f')} | "
            + (
                f"{format_spread(r.get('speedup_vs_constant'), r.get('speedup_vs_constant_range'), '.2f')} | "
                if vs_constant
                else ""
            )
            + f"{'—' if r['tau'] is None else format(r['tau'], '.2f')} | {count(r, 'drafted_per_cycle', '.2f')} | "
            f"{count(r, 'wasted_draft_tokens')} | {count(r, 'copied_cycles')} | {t['target_forwards']:.2f} | "
            f"{t['drafter_forwards']:.2f} | {t['other']:.2f} |"
        )
    same = "yes" if report["outputs_identical"] else f"NO (prompts {report['mismatched_prompts']})"
    lines.append(f"\ngreedy outputs identical across methods: {same}")
    if report.get("calibration"):
        lines.append(format_calibration(report["calibration"]))
    if report.get("profile"):
        lines.append("\n" + format_profile(report["profile"]))
    return "\n".join(lines)
