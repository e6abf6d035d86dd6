# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Teacher-forced acceptance per depth, with cluster-bootstrap confidence intervals.

Chain tau at tau ~ 1.35 never reaches the depths where drafters drift apart. Teacher forcing asks, at every answer
position and every depth, whether the drafter's step j agrees with the target *given the correct prefix*:

* Each prompt (each turn of a multi-turn prompt) is answered once by the target, greedily, and the answer is cached
  on disk (`AnswerCache`, keyed by target identity + prompt ids + max_new_tokens).
* One target forward over prompt + answer (`features.capture_target_features`) gives the drafter's features g_t and
  the target's greedy token y_t = argmax z_t at every position t.
* The drafter is unrolled teacher-forced by `ttt_forward` (one batched pass per sequence): depth 1 at position t
  reads g_t and x_{t+1}; depth j >= 2 reads its own depth-(j-1) state at t (`next_hidden`: pre- or post-norm per
  `norm_output`) and the correct token x_{t+j}, attending to step-0 keys <= t plus its own chain keys at t. That is
  the key set and the input of a real chain at depth j whose first j-1 drafts were right (tests check it against
  `drafter.forward` with a cache).
* Depth j at position t predicts x_{t+1+j} and is compared with the target's y_{t+j}. Positions are *answer
  positions*: t >= P-1 (P = prompt length: x_{t+1} is an answer token, as for every real drafting position) and
  t+j <= n-2 (the predicted token is inside the answer). A sequence with an A-token answer gives A-j positions at
  depth j.

What is stored per (drafter, sequence) is the rank of y_{t+j} in the drafter's draft-vocabulary logits at every depth
and position (`BIG_RANK` when y_{t+j} is not in the draft vocabulary; ties broken like `argmax`: lower draft id
first), so every metric below comes from the same array:

* `acc@k[j]`: fraction of depth-j positions where y_{t+j} is in the drafter's top-k (k = 1 is greedy agreement).
* `cond@1[j]`: acceptance at depth j given depths 1..j-1 were all right (the chain's conditional acceptance).
* `tau_chain[K]`: expected accepted length of a greedy chain of K drafts started at a position, bonus counted:
  1 + sum_{j<=K} prod_{i<=j} 1[rank_i(t) = 0], computed per position from the joint indicators (not from a product of
  marginals), averaged over the positions where depth K is defined. With a greedy target this is exactly what a
  chain drafted from that position accepts; it is a per-position average, not the cycle-weighted tau of `eval`.
* `tau_tree@k[K]`: the same with 1[rank_i(t) < k]: the exact expected accepted length of a *full* k-ary draft tree of
  depth K (k^K leaves, each node expanding its drafter's top-k, verified with a tree mask): along the correct path
  every node sees exactly the teacher-forced input. Trees pruned to a node budget (EAGLE-2 dynamic trees) accept at
  most this: it is an upper bound for them.

Intervals: conversations (prompts; a perturbed prompt's variants count as one) are resampled with replacement
(cluster bootstrap: positions within a conversation are correlated), every metric a ratio of resampled sums; the
percentile interval is reported. Paired differences and ratios between drafters use the same resamples on the same
positions, so a drafter compared with itself has a difference of exactly 0.
"""

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel
from transformers.utils import logging

from ..agreement import (  # the statistics, shared with the trainer's validation metrics
    BIG_RANK,
    bootstrap_weights,
    label_ranks,
    position_metrics,
    target_to_draft_ids,
)
from ..agreement import percentile_interval as _interval
from ..agreement import ratio as _ratio
from ..errors import InputError
from ..features import capture_target_features, chunked_argmax, output_head
from ..loading import check_drafters_fit
from ..utils import text_config
from ..utils.io import write_errors_name


logger = logging.get_logger(__name__)

__all__ = [
    "BIG_RANK",
    "DEFAULT_TOP_KS",
    "AnswerCache",
    "TFSequence",
    "target_fingerprint",
    "generate_answer",
    "build_sequences",
    "draft_ranks",
    "teacher_forced_ranks",
    "summarize",
    "bootstrap_weights",
    "format_summary",
    "evaluate_teacher_forced",
    "heldout_suite",
]

DEFAULT_TOP_KS = (1, 2, 4, 8)
ANSWER_CACHE_FORMAT = "hf-eagle31-tf-answer/1"


# ---------------------------------------------------------------------------------------------- answers, cached


def target_fingerprint(target: PreTrainedModel) -> str:
    """
    Identity of a target for the answer cache: its name, dtype, config and a checksum of every weight (float64 sums,
    so a retrained or re-quantized target of the same name gets other answers). sha256 hex.
    """
    text = text_config(target)
    digest = hashlib.sha256()
    digest.update(str(getattr(text, "_name_or_path", "") or type(target).__name__).encode())
    digest.update(str(target.dtype).encode())
    digest.update(json.dumps(target.config.to_diff_dict(), sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, param in sorted(target.state_dict().items()):
            if torch.is_floating_point(param):
                digest.update(f"{name}:{tuple(param.shape)}:{param.double().sum().item():.10e}".encode())
    return digest.hexdigest()


class AnswerCache:
    """
    The target's greedy answers on disk, one small JSON file per (target identity, prompt ids, max_new_tokens).
    Writes are atomic (temporary file + rename), so a killed run leaves only complete entries. `directory=None`
    keeps answers in memory only. `hits` / `misses` count look-ups.
    """

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = None if directory is None else os.fspath(directory)
        self._memory = {}
        self.hits = 0
        self.misses = 0
        if self.directory is not None:
            if os.path.exists(self.directory) and not os.path.isdir(self.directory):
                raise InputError(
                    f"answer cache {self.directory} is a file, not a folder: pass a folder for the cached answers "
                    "(or None / --answer-cache none to keep them in memory)."
                )
            with write_errors_name(self.directory):
                os.makedirs(self.directory, exist_ok=True)

    @staticmethod
    def key(target_id: str, prompt_ids: Sequence[int], max_new_tokens: int) -> str:
        payload = json.dumps(
            {"target": target_id, "prompt": [int(i) for i in prompt_ids], "max_new_tokens": int(max_new_tokens)},
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], key + ".json")

    def get(self, target_id: str, prompt_ids: Sequence[int], max_new_tokens: int) -> list[int] | None:
        key = self.key(target_id, prompt_ids, max_new_tokens)
        answer = self._memory.get(key)
        if answer is None and self.directory is not None and os.path.isfile(self._path(key)):
            try:
                with open(self._path(key)) as f:
                    record = json.load(f)
                if record.get("format") == ANSWER_CACHE_FORMAT and record.get("prompt_ids") == list(prompt_ids):
                    answer = record["answer_ids"]
            except (OSError, ValueError, KeyError):
                answer = None  # unreadable entry: generated again and overwritten
        if answer is None:
            self.misses += 1
            return None
        self.hits += 1
        self._memory[key] = answer
        return list(answer)

    def put(self, target_id: str, prompt_ids: Sequence[int], max_new_tokens: int, answer_ids: Sequence[int]) -> None:
        key = self.key(target_id, prompt_ids, max_new_tokens)
        self._memory[key] = [int(i) for i in answer_ids]
        if self.directory is None:
            return
        path = self._path(key)
        with write_errors_name(self.directory):
            self._write(path, key, target_id, prompt_ids, max_new_tokens)

    def _write(self, path, key, target_id, prompt_ids, max_new_tokens):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        record = {
            "format": ANSWER_CACHE_FORMAT,
            "target": target_id,
            "max_new_tokens": int(max_new_tokens),
            "prompt_ids": [int(i) for i in prompt_ids],
            "answer_ids": self._memory[key],
        }
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)


def _eos_ids(target: PreTrainedModel) -> set[int]:
    eos = target.generation_config.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) if eos is not None else set()


def _pad_id(target: PreTrainedModel) -> int:
    config = target.generation_config
    if config.pad_token_id is not None:
        return int(config.pad_token_id)
    eos = config.eos_token_id
    return int(eos[0] if isinstance(eos, (list, tuple)) else eos) if eos is not None else 0


@torch.no_grad()
def generate_answers(
    target: PreTrainedModel, prompts_ids: Sequence[Sequence[int]], max_new_tokens: int
) -> list[list[int]]:
    """
    The target's greedy answers (new token ids, up to and including the EOS that ended each) to a batch of prompts,
    left-padded into one `generate` call: on a CPU a batch of B costs little more than one prompt per decoding step.
    """
    if not prompts_ids:
        return []
    pad = _pad_id(target)
    width = max(len(p) for p in prompts_ids)
    ids = torch.full((len(prompts_ids), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts_ids):
        ids[row, width - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    out = target.generate(
        ids.to(target.device),
        attention_mask=mask.to(target.device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_k=None,
        top_p=None,
        pad_token_id=pad,
    )
    eos = _eos_ids(target)
    answers = []
    for row in out[:, width:].tolist():
        for i, token in enumerate(row):
            if token in eos:
                row = row[: i + 1]
                break
        answers.append(row)
    return answers


def generate_answer(target: PreTrainedModel, prompt_ids: Sequence[int], max_new_tokens: int) -> list[int]:
    """The target's greedy answer (new token ids, the EOS that ended it included) to `prompt_ids`."""
    return generate_answers(target, [prompt_ids], max_new_tokens)[0]


@dataclass
class TFSequence:
    """One evaluated sequence: a prompt turn and the target's cached greedy answer (`input_ids` = prompt + answer)."""

    prompt_id: str
    turn: int
    suite: str
    source: str
    group: str  # the row it is reported under (source; perturbation; long-suite length)
    cluster: str  # the bootstrap's resampling unit (the conversation; a perturbed prompt's variants share one)
    input_ids: list[int]
    prompt_length: int

    @property
    def answer_length(self) -> int:
        return len(self.input_ids) - self.prompt_length


def _group_of(prompt) -> str:
    meta = getattr(prompt, "meta", None) or {}
    if "perturbation" in meta:
        return meta["perturbation"]
    if "target_tokens" in meta:
        return f"{meta['target_tokens']}"
    return prompt.source


def build_sequences(
    target: PreTrainedModel,
    tokenizer,
    prompts: Sequence,
    max_new_tokens: int = 128,
    cache: AnswerCache | None = None,
    system_prompt: str | None = None,
    chat_template: str | None = None,
    progress: bool = False,
    batch_tokens: int = 4096,
) -> list[TFSequence]:
    """
    Renders every turn of every `EvalPrompt` (later turns conditioned on the target's own earlier answers, EOS
    stripped) and attaches the target's greedy answer, from `cache` when it holds it, else generated (left-padded
    batches of at most `batch_tokens` prompt + answer tokens) and stored. Sequences come prompt by prompt, turn by turn.
    """
    from ..data.suites import load_chat_template, render

    if batch_tokens < 1:
        raise InputError(f"batch_tokens={batch_tokens}: must be >= 1.")
    template = load_chat_template(chat_template)
    cache = cache if cache is not None else AnswerCache(None)
    target_id = target_fingerprint(target)
    eos = _eos_ids(target)
    max_positions = getattr(text_config(target), "max_position_embeddings", None)
    by_prompt = [[] for _ in prompts]  # the sequences of each prompt, turn by turn
    generated_tokens, start = 0, time.perf_counter()
    for turn in range(max((len(p.turns) for p in prompts), default=0)):  # turn r needs the answers of turns < r
        pending = []  # (prompt index, ids) whose answer is not cached
        rendered, found = {}, {}
        for index, prompt in enumerate(prompts):
            if turn >= len(prompt.turns):
                continue
            history = []
            for seq in by_prompt[index]:
                answer = seq.input_ids[seq.prompt_length :]
                stripped = next((answer[:i] for i, token in enumerate(answer) if token in eos), answer)
                history.append(tokenizer.decode(stripped, skip_special_tokens=True))
            ids = render(tokenizer, prompt, history=tuple(history), system_prompt=system_prompt, chat_template=template)
            if max_positions is not None and len(ids) + max_new_tokens > max_positions:
                raise InputError(
                    f"prompt {prompt.id} (turn {turn + 1}) has {len(ids)} tokens: with {max_new_tokens} new "
                    f"tokens it exceeds the target's {max_positions} positions; lower --max-new-tokens."
                )
            rendered[index] = ids
            found[index] = cache.get(target_id, ids, max_new_tokens)
            if found[index] is None:
                pending.append(index)
        # Batches of similar lengths, at most `batch_tokens` padded tokens each (longest first: the slow ones early).
        pending.sort(key=lambda i: -len(rendered[i]))
        batches, current = [], []
        for index in pending:
            width = max([len(rendered[i]) for i in current] + [len(rendered[index])]) + max_new_tokens
            if current and width * (len(current) + 1) > batch_tokens:
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        for number, batch in enumerate(batches):
            answers = generate_answers(target, [rendered[i] for i in batch], max_new_tokens)
            for index, answer in zip(batch, answers):
                cache.put(target_id, rendered[index], max_new_tokens, answer)
                found[index] = answer
                generated_tokens += len(answer)
            if progress:
                logger.info(
                    f"teacher-forced answers, turn {turn + 1}: batch {number + 1}/{len(batches)} "
                    f"({generated_tokens} tokens, {time.perf_counter() - start:.0f} s)"
                )
        for index, ids in rendered.items():
            prompt = prompts[index]
            meta = getattr(prompt, "meta", None) or {}
            answer = found[index]
            by_prompt[index].append(
                TFSequence(
                    prompt_id=prompt.id,
                    turn=turn + 1,
                    suite=prompt.suite,
                    source=prompt.source,
                    group=_group_of(prompt),
                    cluster=str(meta.get("standard_id", prompt.id)),
                    input_ids=list(ids) + list(answer),
                    prompt_length=len(ids),
                )
            )
    sequences = [seq for seqs in by_prompt for seq in seqs]
    if generated_tokens:
        logger.info(
            f"teacher-forced: generated {generated_tokens} answer tokens in "
            f"{time.perf_counter() - start:.1f} s ({cache.hits} cached answers re-used)"
        )
    return sequences


# ---------------------------------------------------------------------------------------------- ranks per depth


def draft_ranks(
    drafter: PreTrainedModel,
    input_ids: torch.Tensor,
    target_hidden_states,
    greedy: torch.Tensor,
    prompt_length: int,
    max_depth: int,
) -> np.ndarray:
    """
    The teacher-forced ranks of one sequence: `input_ids` (1, n) prompt + answer, `target_hidden_states` the
    drafter's captured states of that forward, `greedy` (1, n) the target's argmax at every position. Returns an
    int16 array (max_depth, A-1) over positions t = P-1 .. n-3: entry [j-1, t-(P-1)] is the rank at depth j of
    y_{t+j}, or -1 where t+j > n-2 (the predicted token would be past the answer).
    """
    n = input_ids.shape[1]
    first = prompt_length - 1
    width = max(n - 2 - first, 0)  # positions t = P-1 .. n-3
    out = np.full((max_depth, width), -1, dtype=np.int16)
    if width == 0:
        return out
    to_draft = target_to_draft_ids(drafter)
    with torch.no_grad():
        step_logits = drafter.ttt_forward(input_ids, target_hidden_states, max_depth)
    for step, logits in enumerate(step_logits):
        depth = step + 1
        last = n - 2 - depth  # last position t with t + depth <= n - 2
        if last < first:
            continue
        positions = torch.arange(first, last + 1, device=input_ids.device)
        labels = to_draft[greedy[0, positions + depth]]
        ranks = label_ranks(logits[0, positions], labels)
        out[step, : positions.numel()] = ranks.cpu().numpy().astype(np.int16)
    return out


@torch.no_grad()
def teacher_forced_ranks(
    target: PreTrainedModel,
    drafters: dict[str, PreTrainedModel],
    sequences: Sequence[TFSequence],
    max_depth: int = 8,
    progress: bool = False,
) -> tuple[dict[str, list[np.ndarray]], dict]:
    """
    `({label: [ranks of each sequence]}, info)`: one target forward per sequence (features of every drafter's layers
    and the greedy tokens), then each drafter's teacher-forced unroll. `info` has the CPU/wall seconds spent and the
    target's self-consistency (fraction of answer tokens equal to the full forward's argmax: below 1 only through
    numerical differences between cached decoding and one forward).
    """
    from tqdm.auto import tqdm

    if max_depth < 1:
        raise InputError(f"max_depth={max_depth}: must be >= 1.")
    check_drafters_fit(target, drafters)
    layer_ids = sorted({int(i) for d in drafters.values() for i in d.config.target_layer_ids})
    weight, bias = output_head(target)
    ranks = {label: [] for label in drafters}
    agree = total = 0
    seconds = {"target": 0.0, **{label: 0.0 for label in drafters}}
    for seq in tqdm(sequences, desc="teacher-forced", unit="seq", disable=not progress):
        ids = torch.as_tensor(seq.input_ids, device=target.device).reshape(1, -1)
        start = time.perf_counter()
        feats, final = capture_target_features(target, ids, None, layer_ids)
        greedy = chunked_argmax(final, weight, bias)
        seconds["target"] += time.perf_counter() - start
        by_layer = dict(zip(layer_ids, feats))
        answer = slice(seq.prompt_length - 1, ids.shape[1] - 1)
        agree += int((greedy[0, answer] == ids[0, answer.start + 1 :]).sum())
        total += ids.shape[1] - seq.prompt_length
        for label, drafter in drafters.items():
            start = time.perf_counter()
            own = [by_layer[int(i)].to(drafter.dtype) for i in drafter.config.target_layer_ids]
            ranks[label].append(draft_ranks(drafter, ids, own, greedy, seq.prompt_length, max_depth))
            seconds[label] += time.perf_counter() - start
    info = {"seconds": seconds, "target_self_consistency": agree / total if total else None, "answer_tokens": total}
    return ranks, info


# ---------------------------------------------------------------------------------------------- statistics

_target_to_draft = target_to_draft_ids  # the names before the statistics moved to hf_eagle31.agreement
_position_metrics = position_metrics


def _nested(names, value, low, high) -> dict:
    """{"acc@1": {"value": [per depth], "ci": [[lo, hi] per depth]}, ...} from flat "metric/depth" names."""
    out = {}
    for name, v, lo, hi in zip(names, value, low, high):
        metric, _ = name.rsplit("/", 1)
        entry = out.setdefault(metric, {"value": [], "ci": []})
        clean = lambda x: None if x is None or not np.isfinite(x) else float(x)  # noqa: E731
        entry["value"].append(clean(v))
        entry["ci"].append([clean(lo), clean(hi)])
    return out


def summarize(
    sequences: Sequence[TFSequence],
    ranks: dict[str, list[np.ndarray]],
    top_ks: Sequence[int] = DEFAULT_TOP_KS,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: bool = True,
) -> dict:
    """
    Point estimates and cluster-bootstrap percentile intervals of every metric (see the module docstring) for each
    drafter, plus paired differences (`diff`) and ratios (`ratio`) of every other drafter against the first, on the
    same positions and the same resamples. With `groups`, the same per group of sequences (`TFSequence.group`) under
    `"groups"`. Returns a JSON-serializable dict.
    """
    labels = list(ranks)
    if not labels:
        raise ValueError("no drafters to summarize.")
    if any(len(ranks[label]) != len(sequences) for label in labels):
        raise ValueError("every drafter needs one rank array per sequence.")
    top_ks = sorted({int(k) for k in top_ks} | {1})
    summary = _summarize_part(
        list(range(len(sequences))), sequences, ranks, labels, top_ks, num_resamples, confidence, seed
    )
    summary.update(drafters=labels, top_ks=top_ks, confidence=confidence, num_resamples=num_resamples, seed=seed)
    if groups:
        names = list(dict.fromkeys(s.group for s in sequences))
        if len(names) > 1:
            summary["groups"] = {
                name: _summarize_part(
                    [i for i, s in enumerate(sequences) if s.group == name],
                    sequences,
                    ranks,
                    labels,
                    top_ks,
                    num_resamples,
                    confidence,
                    seed,
                )
                for name in names
            }
    return summary


def _summarize_part(indices, sequences, ranks, labels, top_ks, num_resamples, confidence, seed) -> dict:
    clusters = list(dict.fromkeys(sequences[i].cluster for i in indices))
    where = {c: n for n, c in enumerate(clusters)}
    weights = bootstrap_weights(len(clusters), num_resamples, seed)
    estimates, points, names = {}, {}, None
    for label in labels:
        sums = counts = None
        for i in indices:
            names, s, c = position_metrics(ranks[label][i].astype(np.int64), top_ks)
            if sums is None:
                sums, counts = np.zeros((len(clusters), len(s))), np.zeros((len(clusters), len(s)))
            sums[where[sequences[i].cluster]] += s
            counts[where[sequences[i].cluster]] += c
        points[label] = _ratio(sums.sum(0), counts.sum(0))
        estimates[label] = (_ratio(weights @ sums, weights @ counts), counts.sum(0))
    part = {"num_sequences": len(indices), "num_clusters": len(clusters), "metrics": {}}
    first = labels[0]
    positions = estimates[first][1]
    part["positions_per_depth"] = [
        int(positions[names.index(f"acc@1/{j + 1}")]) for j in range(ranks[first][indices[0]].shape[0])
    ]
    for label in labels:
        low, high = _interval(estimates[label][0], confidence)
        part["metrics"][label] = _nested(names, points[label], low, high)
    if len(labels) > 1:
        part["diff"], part["ratio"] = {}, {}
        for label in labels[1:]:
            diff = estimates[label][0] - estimates[first][0]
            low, high = _interval(diff, confidence)
            part["diff"][label] = _nested(names, points[label] - points[first], low, high)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = estimates[label][0] / estimates[first][0]
                point_ratio = points[label] / points[first]
            low, high = _interval(np.where(np.isfinite(ratio), ratio, np.nan), confidence)
            part["ratio"][label] = _nested(names, point_ratio, low, high)
    return part


# ---------------------------------------------------------------------------------------------- report


def _cell(entry, i, digits=3, signed=False):
    value, (low, high) = entry["value"][i], entry["ci"][i]
    if value is None:
        return "–"
    fmt = f"{'+' if signed else ''}.{digits}f"
    text = f"{value:{fmt}}"
    if low is not None and high is not None:
        text += f" [{low:{fmt}}, {high:{fmt}}]"
        if signed and (low > 0 or high < 0):
            text += " *"
    return text


def format_summary(summary: dict, metrics: Sequence[str] | None = None, title: str | None = None) -> str:
    """
    Markdown tables with intervals: one per metric (acc@k / cond@1 per depth; tau_chain and tau_tree by chain length
    K), a row per drafter, then `Δ <drafter> − <first>` rows (paired; `*` where the interval excludes 0) and `×` rows
    (paired ratio).
    """
    labels = summary["drafters"]
    if metrics is None:
        metrics = (
            [f"acc@{k}" for k in summary["top_ks"]]
            + ["cond@1", "tau_chain"]
            + [f"tau_tree@{k}" for k in summary["top_ks"] if k > 1]
        )
    depth = len(summary["positions_per_depth"])
    lines = [f"### {title}", ""] if title else []
    lines.append(
        f"{summary['num_sequences']} sequences, {summary['num_clusters']} conversations resampled; "
        f"positions per depth: {summary['positions_per_depth']}; {int(summary['confidence'] * 100)}% "
        f"cluster-bootstrap intervals ({summary['num_resamples']} resamples)"
    )
    for metric in metrics:
        axis = "K" if metric.startswith("tau") else "depth"
        lines += [
            "",
            f"**{metric}**",
            "",
            f"| {metric} | " + " | ".join(f"{axis} {j}" for j in range(1, depth + 1)) + " |",
            "|---|" + "---|" * depth,
        ]
        for label in labels:
            entry = summary["metrics"][label][metric]
            lines.append(f"| {label} | " + " | ".join(_cell(entry, j) for j in range(depth)) + " |")
        for label in labels[1:]:
            entry = summary["diff"][label][metric]
            lines.append(
                f"| Δ {label} − {labels[0]} | " + " | ".join(_cell(entry, j, signed=True) for j in range(depth)) + " |"
            )
            entry = summary["ratio"][label][metric]
            lines.append(f"| × {label} / {labels[0]} | " + " | ".join(_cell(entry, j) for j in range(depth)) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- one call


def check_sizes(drafters: dict, max_new_tokens: int, max_depth: int, top_ks: Sequence[int]) -> None:
    """The sizes the answers and the drafters bound, before any work: depth j needs an answer longer than j tokens
    (a depth past it scores nothing and costs a drafter pass per position), and a top-k as large as a drafter's
    draft vocabulary agrees on every drafted token (a random drafter would score 1.0)."""
    if max_depth >= max_new_tokens:
        raise InputError(
            f"max_depth={max_depth}: depths beyond max_new_tokens - 1 = {max_new_tokens - 1} have no answer position "
            "(--max-depth <= --max-new-tokens - 1)."
        )
    vocab = min(int(getattr(d.config, "draft_vocab_size", None) or d.config.vocab_size) for d in drafters.values())
    if max(top_ks) >= vocab:
        raise InputError(
            f"top_ks={list(top_ks)}: a k >= the draft vocabulary size {vocab} counts every drafted token as agreeing "
            f"(--top-k below {vocab})."
        )


def evaluate_teacher_forced(
    target: PreTrainedModel,
    tokenizer,
    drafters: dict[str, PreTrainedModel],
    prompts: Sequence,
    max_new_tokens: int = 128,
    max_depth: int = 8,
    answer_cache: AnswerCache | str | os.PathLike | None = None,
    top_ks: Sequence[int] = DEFAULT_TOP_KS,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    system_prompt: str | None = None,
    chat_template: str | None = None,
    progress: bool = False,
    batch_tokens: int = 4096,
) -> dict:
    """
    Answers (cached), one target forward per sequence, every drafter's teacher-forced unroll, and the summary with
    intervals (`summarize`). The returned dict adds `cost` (seconds of answer generation, target forwards and each
    drafter; CPU seconds of this process) and `answer_cache` (hits / misses).
    """
    if not drafters:
        raise InputError("pass at least one drafter.")
    if not prompts:
        raise InputError("no prompts to evaluate.")
    check_sizes(drafters, max_new_tokens, max_depth, top_ks)
    cache = answer_cache if isinstance(answer_cache, AnswerCache) else AnswerCache(answer_cache)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sequences = build_sequences(
        target, tokenizer, prompts, max_new_tokens, cache, system_prompt, chat_template, progress, batch_tokens
    )
    answers_s, cpu1 = time.perf_counter() - wall0, time.process_time()
    ranks, info = teacher_forced_ranks(target, drafters, sequences, max_depth, progress)
    summary = summarize(sequences, ranks, top_ks, num_resamples, confidence, seed)
    summary["cost"] = {
        "answers_wall_s": answers_s,
        "answers_cpu_s": cpu1 - cpu0,
        "eval_wall_s": sum(info["seconds"].values()),
        "eval_cpu_s": time.process_time() - cpu1,
        "seconds": info["seconds"],
        "threads": torch.get_num_threads(),
    }
    summary["target_self_consistency"] = info["target_self_consistency"]
    summary["answer_tokens"] = info["answer_tokens"]
    summary["answer_cache"] = {"directory": cache.directory, "hits": cache.hits, "misses": cache.misses}
    summary["sequences"] = [
        {
            "prompt": s.prompt_id,
            "turn": s.turn,
            "group": s.group,
            "cluster": s.cluster,
            "prompt_tokens": s.prompt_length,
            "answer_tokens": s.answer_length,
        }
        for s in sequences
    ]
    return summary


def heldout_suite(num_prompts: int = 60, max_chars: int = 2000, path=None) -> list:
    """
    `num_prompts` first user turns of the held-out ShareGPT split (`data.conversations.heldout_sharegpt`, never in
    training data), spread evenly over it, at most `max_chars` characters each; suite "heldout", chat template.
    """
    from ..data.conversations import heldout_sharegpt
    from ..data.suites import EvalPrompt

    usable = []
    for i, conv in enumerate(heldout_sharegpt(None, path)):
        turn = next((m["content"] for m in conv if m["role"] == "user"), "")
        if turn.strip() and len(turn) <= max_chars:
            usable.append((i, turn))
    if num_prompts > len(usable):
        raise InputError(f"the held-out split has {len(usable)} usable first turns; ask for at most that many.")
    chosen = [usable[i * len(usable) // num_prompts] for i in range(num_prompts)]
    return [
        EvalPrompt(f"sharegpt-heldout-{i}", "heldout", "sharegpt", [turn], meta={"heldout_index": i})
        for i, turn in chosen
    ]
