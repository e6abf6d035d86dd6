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

This module also holds what `bench` and `drift` share: loading drafters and prompts, and timing the target's
forwards with hooks. The command-line glue of `hf-eagle31 eval` is the `add_cli_arguments` / `run_cli` pair at the
end (arguments and loaders shared with `bench` / `drift` are in `cli_utils`).
"""

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .calibration import (
    Calibration,
    add_calibration_arguments,
    calibration_from_args,
    format_calibration,
    format_number,
    format_spread,
    median_range,
)
from .modeling import SpeculationStats, tau_from_forwards  # the one definition of tau and acceptance
from .suites import (
    LONG_SOURCES,
    STANDARD_SOURCES,
    EvalPrompt,
    load_chat_template,
    long_suite,
    perturbed_suite,
    render,
    standard_suite,
)


# ---------------------------------------------------------------------------------------------- loading


def load_drafter(
    name_or_path: str | os.PathLike, target: PreTrainedModel, trust_remote_code: bool = False,
    dtype: torch.dtype | None = None,
) -> PreTrainedModel:
    """
    A drafter checkpoint (local folder or Hub id) in `dtype` (default: the target's) on the target's device, checked
    against the target
    (`check_target` raises a one-line ValueError on a mismatch) and with the target's embeddings when the checkpoint
    did not carry them. hf-eagle31 checkpoints load with this package's classes; any other checkpoint runs its own
    code only with `trust_remote_code` (`training.load_drafter_checkpoint`); EAGLE / vLLM / speculators formats are
    refused with the `hf-eagle31 convert` command that makes them loadable.
    """
    from .training import load_drafter_checkpoint  # not at the top: `training` loads transformers' Trainer (slow)

    drafter, info = load_drafter_checkpoint(
        name_or_path, trust_remote_code=trust_remote_code, dtype=dtype or target.dtype, output_loading_info=True
    )
    # Embeddings may be absent (they are the target's, loaded below); any other missing weight is an error.
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("embed_tokens.weight")]
    if missing:
        raise ValueError(
            f"{name_or_path} lacks weights {sorted(missing)[:5]}: the checkpoint is incomplete; re-export or convert it "
            "(`hf-eagle31 convert`)."
        )
    if not hasattr(drafter, "check_target"):
        raise ValueError(f"{name_or_path} is a {type(drafter).__name__}, not an hf-eagle31 drafter checkpoint.")
    try:
        drafter.check_target(target.config)
    except ValueError as error:
        raise ValueError(f"{name_or_path}: {error}") from None
    drafter.to(target.device).eval()
    if not drafter.embeddings_ready:
        drafter.load_target_embeddings(target)
    return drafter


def load_drafters(
    names: list[str], target: PreTrainedModel, trust_remote_code: bool = False, dtype: torch.dtype | None = None
) -> dict[str, PreTrainedModel]:
    """`{name as given: drafter}`; the same checkpoint given twice is loaded twice under distinct labels."""
    drafters = {}
    for name in names:
        label = name if name not in drafters else f"{name}#{len(drafters)}"
        drafters[label] = load_drafter(name, target, trust_remote_code=trust_remote_code, dtype=dtype)
    return drafters


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 matmuls run natively here (a CUDA device, or a CPU with AVX512-BF16 / AMX)."""
    if str(device).startswith("cuda"):
        return True
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def read_prompt_file(path: str, num_prompts: int | None = None) -> list[EvalPrompt]:
    """
    Prompts from a JSON-lines file, one object per line with "prompt" (a string), "turns" (a list of user turns,
    MT-Bench's format) or "messages" (role/content turns; the user turns are asked in order, each later turn
    conditioned on the target's own answers, and a leading "system" message becomes the system prompt).
    Optional keys: "id" (or "question_id"), "system", "suite" (default: the file name), "template" (a chat template).
    """
    if not os.path.isfile(path):
        raise ValueError(f"prompt file {path} does not exist: pass a .jsonl file with one {{'prompt': ...}} per line.")
    if num_prompts is not None and num_prompts < 1:
        raise ValueError(f"num_prompts={num_prompts}: ask for at least 1 prompt (or None for all).")
    default_suite = os.path.splitext(os.path.basename(path))[0]
    prompts = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"prompt file {path} is not UTF-8 text (byte {e.start}: {e.reason}).") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not valid JSON ({error.msg}): write one JSON object per line.")
        system = record.get("system")
        if "prompt" in record:
            turns = [record["prompt"]]
        elif "turns" in record:
            turns = record["turns"] if isinstance(record["turns"], list) else None  # a string is not a turn list
        elif "messages" in record:
            messages = record["messages"]
            if messages and messages[0].get("role") == "system":
                system = system or messages[0]["content"]
            turns = [m["content"] for m in messages if m.get("role") == "user"]
        else:
            turns = []
        if not turns or not all(isinstance(t, str) and t for t in turns):
            raise ValueError(
                f"{path}:{number} needs a non-empty 'prompt' string, 'turns' list or 'messages' list with user turns."
            )
        prompts.append(EvalPrompt(
            id=str(record.get("id", record.get("question_id", number))), suite=record.get("suite", default_suite),
            source=path, turns=turns, system=system, template=record.get("template") or "chat",
        ))
        if num_prompts is not None and len(prompts) >= num_prompts:
            break
    if not prompts:
        raise ValueError(f"{path} holds no prompts: write one JSON object per line.")
    return prompts


def read_chat_template(chat_template: str | None) -> str | None:
    """`--chat-template` value: a path to a .jinja file (read here), a Jinja string, or a `suites.TEXT_FORMATS` name;
    anything else (a mistyped path) raises (`suites.load_chat_template`)."""
    return load_chat_template(chat_template)


def suite_prompts(
    name: str,
    tokenizer: PreTrainedTokenizerBase,
    num_prompts: int | None = None,
    long_lengths: Sequence[int] | None = None,
    chat_template: str | None = None,
    source_names: Sequence[str] | None = None,
) -> list[EvalPrompt]:
    """
    Prompts of a named suite from `hf_eagle31.suites`: `standard`, `perturbed`, `long` or `all` (the three), or
    `heldout` (held-out ShareGPT first turns, `num_prompts` of them, default 60).
    `num_prompts` is per source (standard/perturbed) or per source and length (long); None keeps the suites' defaults.
    `source_names` restricts the suites to those sources (e.g. ["mtbench", "gsm8k"]).
    """
    per_source = {} if num_prompts is None else {"num_per_source": num_prompts}
    if source_names:
        known = set(STANDARD_SOURCES) | set(LONG_SOURCES)
        unknown = [s for s in source_names if s not in known]
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}: choose from {', '.join(sorted(known))}.")
        standard = tuple(s for s in source_names if s in STANDARD_SOURCES)
        long = tuple(s for s in source_names if s in LONG_SOURCES)
        if name in ("standard", "perturbed") and not standard:
            raise ValueError(f"none of {source_names} is a {name}-suite source: use {', '.join(STANDARD_SOURCES)}.")
        per_source["source_names"] = standard
    if name == "standard":
        return standard_suite(**per_source)
    if name == "perturbed":
        return perturbed_suite(**per_source)
    if name == "long":
        kwargs = {} if num_prompts is None else {"num_per_length": num_prompts}
        if source_names:
            if not long:
                raise ValueError(f"none of {source_names} is a long-suite source: use {', '.join(LONG_SOURCES)}.")
            kwargs["source_names"] = long
        if long_lengths:
            kwargs["lengths"] = tuple(long_lengths)
        return long_suite(tokenizer, chat_template=read_chat_template(chat_template), **kwargs)
    if name == "heldout":  # held-out ShareGPT first turns (`teacher_forced.heldout_suite`), default 60
        from .teacher_forced import heldout_suite

        return heldout_suite(num_prompts or 60)
    if name == "all":
        parts = ["standard", "perturbed", "long"]
        if source_names:  # only the suites that have one of the requested sources
            parts = (["standard", "perturbed"] if standard else []) + (["long"] if long else [])
        return [p for part in parts
                for p in suite_prompts(part, tokenizer, num_prompts, long_lengths, chat_template, source_names)]
    raise ValueError(f"unknown suite {name!r}: use standard, perturbed, long or all (or --prompts FILE.jsonl).")


def render_prompt(
    tokenizer: PreTrainedTokenizerBase,
    prompt: EvalPrompt,
    answers: Sequence[str] = (),
    system_prompt: str | None = None,
    chat_template: str | None = None,
) -> list[int]:
    """
    Token ids of turn `len(answers)` of `prompt` (`suites.render`): the previous user turns with the target's
    `answers` (strings) as history, then the next user turn and the generation prompt. `chat_template` is a path to a
    .jinja file, a template string or a `suites.TEXT_FORMATS` name; `system_prompt` overrides the prompt's own.
    """
    return render(tokenizer, prompt, history=tuple(answers), system_prompt=system_prompt,
                  chat_template=read_chat_template(chat_template))


# ---------------------------------------------------------------------------------------------- timing


class ForwardHookTimer:
    """
    Times every forward of `module` with forward pre/post hooks (synchronising CUDA around each call). Subclasses
    record what they need in `_started(args, kwargs)` (before the call) and `_finished(seconds)` (after it). Use as a
    context manager: the hooks live inside the `with` block.
    """

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.cuda = next(module.parameters()).device.type == "cuda"
        self.handles = []
        self._start = None

    def _started(self, args, kwargs) -> None:
        pass

    def _finished(self, seconds: float) -> None:
        pass

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def _pre(self, module, args, kwargs):
        self._started(args, kwargs)
        self._sync()
        self._start = time.perf_counter()

    def _post(self, module, args, output):
        self._sync()
        self._finished(time.perf_counter() - self._start)

    def __enter__(self):
        # Kept out of torch.compile: generate compiles the target's whole call, hooks included, and tracing them would
        # recompile at every call (their bookkeeping changes) and put the timer inside the graph it times.
        self.handles = [
            self.module.register_forward_pre_hook(torch.compiler.disable(self._pre), with_kwargs=True),
            self.module.register_forward_hook(torch.compiler.disable(self._post)),
        ]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles = []


class TargetForwardTimer(ForwardHookTimer):
    """
    Times every forward of the target and records each call's query length, which tells how many candidates the
    call verified (`candidates_per_forward`), and its duration (`times_s`). Use as a context manager.
    """

    def __init__(self, model: PreTrainedModel):
        super().__init__(model)
        self.reset()

    def reset(self) -> None:
        self.time_s = 0.0
        self.query_lengths = []
        self.times_s = []
        self._start = None

    def _started(self, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"]
        self.query_lengths.append(ids.shape[1])

    def _finished(self, seconds):
        self.time_s += seconds
        self.times_s.append(seconds)

    @property
    def forwards(self) -> int:
        return len(self.query_lengths)

    def candidates_per_forward(self, prompt_length: int) -> list[int]:
        """Candidates verified by each recorded forward of one `generate` call: the first forward also carries the
        prompt, every later one the single not-yet-cached token before its candidates."""
        return [q - (prompt_length if i == 0 else 1) for i, q in enumerate(self.query_lengths)]


@dataclass
class GenerationRun:
    """One timed `generate` call."""

    new_tokens: list[int]
    wall_s: float
    target_forwards: int
    target_time_s: float
    drafter_time_s: float = 0.0
    tau: float | None = None
    stats: SpeculationStats | None = None  # of a drafter run
    candidates_per_forward: list[int] = field(default_factory=list)
    query_lengths: list[int] = field(default_factory=list)  # tokens fed to each target forward (the first: the prompt)
    forward_times_s: list[float] = field(default_factory=list)  # duration of each target forward


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def timed_generate(
    target: PreTrainedModel,
    input_ids: Sequence[int] | torch.Tensor,
    timer: TargetForwardTimer,
    drafter: PreTrainedModel | None = None,
    prompt_lookup_tokens: int | None = None,
    max_new_tokens: int = 128,
    num_assistant_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float | None = None,
    seed: int | None = None,
    drafting: dict | None = None,
    static_cache: bool = False,
) -> GenerationRun:
    """
    One `generate` call, plain (no drafter, no prompt lookup), with HF prompt lookup (`prompt_lookup_tokens`), or
    with `drafter` as the assistant. `timer` is an active `TargetForwardTimer` on `target`. `drafting`: more
    `generate` options for the drafter (a drafting policy, see `DRAFTING_POLICIES`). `static_cache`: decode with a
    `StaticCache` (with room for HF prompt lookup, whose candidates are not cut at `max_length`).
    """
    ids = torch.as_tensor(input_ids, device=target.device).reshape(1, -1)
    kwargs = {"attention_mask": torch.ones_like(ids), "max_new_tokens": max_new_tokens, "do_sample": do_sample}
    if do_sample:
        kwargs.update(temperature=temperature if temperature is not None else 1.0, top_k=None, top_p=None)
    else:
        kwargs.update(temperature=None, top_k=None, top_p=None)
    config = target.generation_config
    if config.pad_token_id is None:
        eos = config.eos_token_id
        kwargs["pad_token_id"] = (eos[0] if isinstance(eos, (list, tuple)) else eos) if eos is not None else 0
    if drafter is not None:
        kwargs["assistant_model"] = drafter
        if num_assistant_tokens is not None:
            kwargs["num_assistant_tokens"] = num_assistant_tokens
        kwargs.update(drafting or {})
    elif prompt_lookup_tokens:
        kwargs["prompt_lookup_num_tokens"] = prompt_lookup_tokens
    if static_cache:
        from transformers import StaticCache

        room = ids.shape[1] + max_new_tokens + (prompt_lookup_tokens or 0) + 1
        kwargs["cache"] = StaticCache(config=target.config, max_cache_len=room)
    if seed is not None:
        torch.manual_seed(seed)
    timer.reset()
    _sync(target.device)
    start = time.perf_counter()
    out = target.generate(ids, **kwargs)
    _sync(target.device)
    wall = time.perf_counter() - start
    new = out[0, ids.shape[1]:].tolist()
    candidates = timer.candidates_per_forward(ids.shape[1])
    run = GenerationRun(new_tokens=new, wall_s=wall, target_forwards=timer.forwards, target_time_s=timer.time_s,
                        candidates_per_forward=candidates, query_lengths=list(timer.query_lengths),
                        forward_times_s=list(timer.times_s))
    if drafter is not None:
        run.stats = drafter.last_speculation_stats
        run.drafter_time_s = run.stats.drafter_time_s
        run.tau = run.stats.tau
    elif prompt_lookup_tokens:
        run.tau = tau_from_forwards(candidates, len(new))
    return run


# ---------------------------------------------------------------------------------------------- pooled statistics


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
    }


# ---------------------------------------------------------------------------------------------- drafting policies


# Drafting policies that `eval --policies` and `bench --policies` compare (each one more row/method,
# `<drafter>:<policy>`). Every policy sets all three switches, so the drafter's saved defaults
# (generation_config.json) never leak into another policy; the drafter alone is the drafter as shipped.
# A confidence policy may name its own threshold, `confidence@0.2` / `confidence+copy@0.5`, so that one run
# compares several thresholds side by side.
DRAFTING_POLICIES = ("constant", "heuristic", "confidence", "copy", "confidence+copy")
# What the confidence and copy policies use unless told otherwise: the shipped drafters' generation_config values.
DEFAULT_CONFIDENCE_THRESHOLD = 0.5
DEFAULT_COPY_TOKENS = 8


def drafting_policy(name: str, confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
                    copy_tokens: int = DEFAULT_COPY_TOKENS) -> dict:
    """The `generate` options of a drafting policy (see `DRAFTING_POLICIES`; `<policy>@<threshold>` overrides
    `confidence_threshold` for a confidence policy)."""
    base, at, threshold = name.partition("@")
    if base not in DRAFTING_POLICIES:
        raise ValueError(f"unknown drafting policy {name!r}: use one of {', '.join(DRAFTING_POLICIES)} "
                         "(confidence policies may add @<threshold>, e.g. confidence@0.2).")
    if at:
        try:
            value = float(threshold)
        except ValueError:
            value = None
        if "confidence" not in base or value is None or not 0.0 < value < 1.0:
            raise ValueError(f"drafting policy {name!r}: only a confidence policy takes @<threshold>, a number "
                             "strictly between 0 and 1 (e.g. confidence@0.2).")
        confidence_threshold = value
    return {
        "num_assistant_tokens_schedule": "heuristic_transient" if base == "heuristic" else "constant",
        "assistant_confidence_threshold": confidence_threshold if "confidence" in base else 0.0,
        "prompt_lookup_num_tokens": copy_tokens if "copy" in base else 0,
    }


# ---------------------------------------------------------------------------------------------- evaluation


def check_context(target: PreTrainedModel, prompt_ids: Sequence[int], max_new_tokens: int, what: str) -> None:
    limit = getattr(target.config.get_text_config(), "max_position_embeddings", None)
    if limit is not None and len(prompt_ids) + max_new_tokens > limit:
        raise ValueError(
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
        raise ValueError("pass at least one drafter.")
    if not prompts:
        raise ValueError("no prompts to evaluate: check --prompts / --suite / --num-prompts.")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    ks = list(num_assistant_tokens) if isinstance(num_assistant_tokens, (list, tuple)) else [num_assistant_tokens]
    if any(k is not None and k < 1 for k in ks):
        raise ValueError(f"num_assistant_tokens must be >= 1, got {ks}.")
    for label, drafter in drafters.items():
        try:
            drafter.check_target(target.config)
        except ValueError as error:
            raise ValueError(f"{label}: {error}") from None
    labels = list(drafters)
    policies = dict(policies or {})
    for name in policies:
        if name in drafters or ":" in name:
            raise ValueError(f"policy name {name!r} clashes with a drafter label: rename it.")
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
                timed_generate(target, warm, timer, drafter=drafter, max_new_tokens=min(8, max_new_tokens),
                               num_assistant_tokens=ks[0], drafting=options[policy])
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
                                target, ids, timer, drafter=drafters[label], max_new_tokens=max_new_tokens,
                                num_assistant_tokens=k, do_sample=do_sample, temperature=temperature,
                                seed=seed + index, drafting=options[policy],
                            )
                            runs.append({"drafter": _row_label(label, policy), "policy": policy,
                                         "num_assistant_tokens": k, "suite": prompt.suite,
                                         "source": prompt.source,
                                         "perturbation": (getattr(prompt, "meta", None) or {}).get("perturbation"),
                                         "prompt": prompt.id, "turn": turn + 1, "prompt_tokens": len(ids),
                                         "input_ids": ids, "repeat": repeat, "run": run})
                            if (k, label, policy) == settings[0]:
                                first_answer = run.new_tokens
                        bar.update(1)
                        if repeat == 0:  # the target's own answer (first drafter's run) is the next turn's history
                            answers.append(
                                tokenizer.decode(_strip_eos(first_answer, target), skip_special_tokens=True)
                            )
            if calibration is not None:
                calibration.sample(f"after pass {repeat + 1}")
    results = []
    suites = list(dict.fromkeys(p.suite for p in prompts))
    for k, label, policy in settings:
        row = _row_label(label, policy)
        for suite in suites:
            mine = [r for r in runs if r["drafter"] == row and r["num_assistant_tokens"] == k and r["suite"] == suite]
            results.append({
                "drafter": row, "suite": suite, "num_assistant_tokens": k, **({"policy": policy} if policies else {}),
                **_summarize(mine),
                "by_source": {src: _summarize([r for r in mine if r["source"] == src])
                              for src in dict.fromkeys(r["source"] for r in mine)},
                "per_prompt": [{"prompt": r["prompt"], "turn": r["turn"], "prompt_tokens": r["prompt_tokens"],
                                **r["run"].stats.to_dict()} for r in mine if r["repeat"] == 0],
            })
            perturbations = [p for p in dict.fromkeys(r["perturbation"] for r in mine) if p is not None]
            if perturbations:
                results[-1]["by_perturbation"] = {
                    name: _summarize([r for r in mine if r["perturbation"] == name]) for name in perturbations
                }
    for result in results:
        base = next(r for r in results if r["drafter"] == labels[0] and r["suite"] == result["suite"]
                    and r["num_assistant_tokens"] == result["num_assistant_tokens"])
        result["tau_ratio"] = result["tau"] / base["tau"] if result["tau"] and base["tau"] else None
        ratios = [mine / theirs if mine and theirs else None
                  for mine, theirs in zip(result["tokens_per_s_per_pass"], base["tokens_per_s_per_pass"])]
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
        "tokens_per_s": tokens_per_s, "tokens_per_s_range": tokens_per_s_range, "tokens_per_s_per_pass": speeds,
        "new_tokens": sum(len(r["run"].new_tokens) for r in first),
        "wall_s": sum(r["run"].wall_s for r in runs) / len(passes),
        "num_prompts": len({r["prompt"] for r in first}), "num_turns": len(first),
        "target_time_s": sum(r["run"].target_time_s for r in runs) / len(passes),
    }


def _strip_eos(tokens, target):
    eos = target.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, (list, tuple)) else [eos]) if eos is not None else set()
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[:i]
    return tokens


def _pass_ratios(mine, base):
    """Median and [min, max] over passes of `mine`'s tokens/s over `base`'s, pass by pass."""
    return median_range([a / b if a and b else None
                         for a, b in zip(mine.get("tokens_per_s_per_pass", ()), base.get("tokens_per_s_per_pass", ()))])


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
    head = ("| suite | drafter | tau | tau × | tok/s | speed × | " + " | ".join(f"acc@{d}" for d in range(1, depth + 1))
            + " | drafted/cycle | wasted |")
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


# ---------------------------------------------------------------------------------------------- CLI


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli_utils import add_common_arguments, add_json_argument, add_policy_arguments

    add_common_arguments(parser, multiple_drafters=True)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--num-assistant-tokens", type=int, nargs="+", default=None,
                        help="draft length K, or several to measure tau/speed per K (default: the drafter's own)")
    parser.add_argument("--do-sample", action="store_true", help="sample (speculative sampling) instead of greedy")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (implies --do-sample)")
    parser.add_argument("--seed", type=int, default=0)
    add_policy_arguments(parser)
    parser.add_argument("--policy", default=None,
                        help=f"run every drafter under this drafting policy ({', '.join(DRAFTING_POLICIES)}; "
                             "confidence ones may add @<threshold>) instead of its saved generation_config.json "
                             "(e.g. to compare checkpoints and a shipped drafter under one policy)")
    add_calibration_arguments(parser)
    add_json_argument(parser)
    add_teacher_forced_arguments(parser)


def run_cli(args: argparse.Namespace) -> int:
    from .cli_utils import drafter_dtype, load_target_for_cli, policies_from_args, prompts_from_args, write_json_report

    if args.teacher_forced:
        return run_teacher_forced_cli(args)
    do_sample = args.do_sample or args.temperature is not None
    policies = policies_from_args(args)  # before loading anything: a misspelt policy fails at once
    drafting = drafting_policy(args.policy, args.confidence_threshold, args.copy_tokens) if args.policy else None
    target, tokenizer = load_target_for_cli(args)
    calibration = calibration_from_args(args, target)
    calibration.check_load_at_start(args.strict)
    drafters = load_drafters(args.drafter, target, trust_remote_code=args.trust_remote_code,
                             dtype=drafter_dtype(args))
    prompts = prompts_from_args(args, tokenizer)
    results, _ = evaluate(
        target, tokenizer, drafters, prompts, max_new_tokens=args.max_new_tokens,
        num_assistant_tokens=args.num_assistant_tokens, do_sample=do_sample, temperature=args.temperature,
        system_prompt=args.system_prompt, chat_template=args.chat_template, seed=args.seed,
        repeats=args.repeats, calibration=calibration, policies=policies, drafting=drafting,
    )
    calibration.check(args.strict)
    print(format_table(results))
    print(format_calibration(calibration.summary()))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        settings.update(do_sample=do_sample, target=args.target or "smollm2-135m-instruct")
        report = {"settings": settings, "results": results, "calibration": calibration.summary()}
        write_json_report(args.json, report)
    return 0


# ---------------------------------------------------------------------------------------------- eval --teacher-forced
# CLI glue of `hf_eagle31.teacher_forced` (the library): per-depth teacher-forced agreement with intervals.


def add_teacher_forced_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("teacher-forced evaluation (--teacher-forced)")
    group.add_argument("--teacher-forced", action="store_true",
                       help="per-depth teacher-forced top-k agreement, chain/tree accepted length and cluster-"
                            "bootstrap intervals (paired against the first --drafter) instead of generate-based tau; "
                            "--suite heldout: held-out ShareGPT first turns")
    group.add_argument("--max-depth", type=int, default=8, help="teacher-forced depths 1..N (default 8)")
    group.add_argument("--top-k", type=int, nargs="+", default=[1, 2, 4, 8], help="top-k agreements (default 1 2 4 8)")
    group.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    group.add_argument("--answer-batch-tokens", type=int, default=4096,
                       help="answers not cached are generated in left-padded batches of at most this many prompt + "
                            "answer tokens (default 4096)")
    group.add_argument("--answer-cache", default=None,
                       help="directory of the cached greedy answers (default $HF_EAGLE31_CACHE/teacher_forced_answers; "
                            "'none' keeps them in memory)")


def run_teacher_forced_cli(args: argparse.Namespace) -> int:
    from . import teacher_forced
    from .cli_utils import drafter_dtype, load_target_for_cli, prompts_from_args, write_json_report
    from .sources import cache_dir

    if args.max_depth < 1 or args.bootstrap < 1 or any(k < 1 for k in args.top_k):
        raise ValueError("--max-depth, --bootstrap and --top-k must be >= 1.")
    target, tokenizer = load_target_for_cli(args)
    drafters = load_drafters(args.drafter, target, trust_remote_code=args.trust_remote_code,
                             dtype=drafter_dtype(args))
    short = [os.path.basename(os.path.normpath(label)) for label in drafters]  # table labels: folder names
    if len(set(short)) == len(short):
        drafters = dict(zip(short, drafters.values()))
    prompts = prompts_from_args(args, tokenizer)
    cache = args.answer_cache or os.path.join(cache_dir(), "teacher_forced_answers")
    summary = teacher_forced.evaluate_teacher_forced(
        target, tokenizer, drafters, prompts, max_new_tokens=args.max_new_tokens, max_depth=args.max_depth,
        answer_cache=None if cache.lower() == "none" else cache, top_ks=args.top_k, num_resamples=args.bootstrap,
        seed=args.seed, system_prompt=args.system_prompt, chat_template=args.chat_template, progress=True,
        batch_tokens=args.answer_batch_tokens,
    )
    where = args.prompts or f"suite {args.suite}"
    print(teacher_forced.format_summary(summary, title=f"teacher-forced, {where}"))
    for name, part in summary.get("groups", {}).items():
        part = {**part, "drafters": summary["drafters"], "top_ks": summary["top_ks"],
                "confidence": summary["confidence"], "num_resamples": summary["num_resamples"]}
        print()
        print(teacher_forced.format_summary(part, metrics=["acc@1", "tau_chain"], title=f"group {name}"))
    cost = summary["cost"]
    print(f"\ncost: answers {cost['answers_cpu_s']:.1f} CPU-s ({summary['answer_cache']['hits']} cached, "
          f"{summary['answer_cache']['misses']} generated), teacher-forced eval {cost['eval_cpu_s']:.1f} CPU-s for "
          f"{summary['positions_per_depth'][0]} depth-1 positions; target self-consistency "
          f"{summary['target_self_consistency']:.4f}")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        settings.update(target=args.target or "smollm2-135m-instruct")
        write_json_report(args.json, {"settings": settings, **summary})
    return 0
