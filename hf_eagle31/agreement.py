# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Teacher-forced agreement statistics: the one copy of the math behind `hf-eagle31 eval --teacher-forced`
(`evaluation/teacher_forced.py`) and the trainer's validation metrics (`training/trainer.py`).

Both reduce a drafter's teacher-forced unroll to a rank array per sequence: `ranks[j-1, t]` is the rank of the
target's greedy token in the drafter's depth-j draft-vocabulary logits at chain position t (0 = the drafter's argmax
agrees; `BIG_RANK` = the target's token is outside the draft vocabulary; -1 = depth j is not defined at t). A
position defined at depth j is defined at every depth < j. `position_metrics` turns one such array into sums and
counts of acc@k, tau_chain, tau_tree@k and cond@1 per depth (joint per-position indicators, never a product of
marginals); `bootstrap_weights` / `ratio` / `percentile_interval` give cluster-bootstrap intervals of ratios of sums.
"""

import warnings
from collections.abc import Sequence

import numpy as np
import torch


__all__ = [
    "BIG_RANK",
    "label_ranks",
    "capped_label_ranks",
    "target_to_draft_ids",
    "chain_ranks",
    "position_metrics",
    "bootstrap_weights",
    "ratio",
    "percentile_interval",
    "point_and_interval",
]

BIG_RANK = 32767  # the label is outside the draft vocabulary: never in any top-k


def target_to_draft_ids(drafter) -> torch.Tensor:
    """(V,) draft id of every target id, -1 outside the draft vocabulary."""
    draft_to_target = drafter.draft_to_target_ids
    inverse = torch.full((drafter.config.vocab_size,), -1, dtype=torch.long, device=draft_to_target.device)
    inverse[draft_to_target] = torch.arange(draft_to_target.numel(), device=draft_to_target.device)
    return inverse


def label_ranks(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """
    Rank of each label (draft ids (m,), -1 = not in the draft vocabulary) in `logits` (m, D): the number of draft
    ids ranked before it, ties broken like `torch.argmax` (the lower id first). Rank 0 <=> argmax == label.
    """
    logits = logits.float()
    safe = labels.clamp(min=0)
    value = logits.gather(-1, safe[:, None])
    ids = torch.arange(logits.shape[-1], device=logits.device)
    ranks = (logits > value).sum(-1) + ((logits == value) & (ids[None] < safe[:, None])).sum(-1)
    return torch.where(labels >= 0, ranks.clamp(max=BIG_RANK - 1), torch.full_like(ranks, BIG_RANK))


def capped_label_ranks(
    logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, labels: torch.Tensor, max_rank: int
) -> torch.Tensor:
    """
    `min(label_ranks(logits[rows, cols], labels), max_rank)` (`BIG_RANK` for labels outside the draft vocabulary)
    without copying the (m, D) rows: one `topk(max_rank)` pass over `logits` (B, n, D) decides every rank below
    `max_rank` from the top values and ids, and only a row whose label ties the smallest of its top values (where the
    top-k cut may split a tie group) is ranked exactly with `label_ranks`. Same indicators rank < k for every
    k <= max_rank, ties broken like `argmax`.
    """
    kk = min(max_rank, logits.shape[-1])
    top_values, top_ids = logits.topk(kk, dim=-1)
    top_values, top_ids = top_values[rows, cols].float(), top_ids[rows, cols]  # (m, kk)
    value = logits[rows, cols, labels.clamp(min=0)].float()[:, None]
    above = (top_values > value).sum(-1)
    ties = ((top_values == value) & (top_ids < labels[:, None])).sum(-1)
    ranks = torch.where(above >= kk, torch.full_like(above, max_rank), above + ties)
    boundary = ((above < kk) & (value[:, 0] <= top_values.min(-1).values)).nonzero(as_tuple=True)[0]
    if boundary.numel():  # the label ties the k-th value: equal values may lie outside the top k
        ranks[boundary] = label_ranks(logits[rows[boundary], cols[boundary]], labels[boundary])
    ranks = ranks.clamp(max=max_rank)
    return torch.where(labels >= 0, ranks, torch.full_like(ranks, BIG_RANK))


@torch.no_grad()
def chain_ranks(
    step_logits: Sequence[torch.Tensor],
    greedy: torch.Tensor,
    to_draft: torch.Tensor,
    token_mask: torch.Tensor,
    max_rank: int | None = None,
) -> torch.Tensor:
    """
    The rank arrays of a batch from a TTT unroll (the trainer's), (B, J, n) int64, in the layout of
    `position_metrics`.

    step_logits: J tensors (B, n, D), `ttt_forward`'s: step j-1 (depth j) at position t reads x_{t+1} and predicts
        x_{t+1+j}. greedy: (B, n) the target's argmax over its full vocabulary (z_s predicts x_{s+1}; < 0 unknown).
    to_draft: (V,) `target_to_draft_ids`. token_mask: (B, n) bool, the tokens a chain may run over (assistant tokens
        that are not padding).
    max_rank: ranks are capped there (`capped_label_ranks`: exact for top-k with k <= max_rank, and much cheaper);
        None: full ranks (`label_ranks`).

    Depth j at t is compared with greedy[t + j] and is defined iff x_{t+1} .. x_{t+1+j} are all in `token_mask` (the
    chain starts after an answer token and every token it drafts is an answer token: `eval --teacher-forced`'s
    answer positions t >= P-1, t + j <= n-2) and greedy[t + 1 .. t + j] are known. A target token outside the draft
    vocabulary is a miss (`BIG_RANK`), as in decoding.
    """
    bsz, n = token_mask.shape
    depth = len(step_logits)
    out = torch.full((bsz, depth, n), -1, dtype=torch.long, device=token_mask.device)
    defined = token_mask.bool().clone()
    defined[:, :-1] = defined[:, 1:].clone()  # chain position t needs x_{t+1}
    defined[:, -1] = False
    for j, logits in enumerate(step_logits, start=1):
        k = n - 1 - j  # positions t = 0 .. k-1 have a token x_{t+1+j}
        if k <= 0:
            break
        defined[:, k:] = False
        defined[:, :k] &= token_mask[:, 1 + j :].bool() & (greedy[:, j : j + k] >= 0)
        rows, cols = defined.nonzero(as_tuple=True)
        if rows.numel() == 0:
            break
        labels = to_draft[greedy[rows, cols + j].clamp(min=0)]
        if max_rank is None:
            out[rows, j - 1, cols] = label_ranks(logits[rows, cols], labels)
        else:
            out[rows, j - 1, cols] = capped_label_ranks(logits[:, :k], rows, cols, labels, max_rank)
    return out


def position_metrics(ranks: np.ndarray, top_ks: Sequence[int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """
    Sums and counts of every metric over one (J, P) rank array: `(names, sums (M,), counts (M,))`, names
    "acc@k/j", "tau_chain/K", "tau_tree@k/K", "cond@1/j". A metric's value over a set of arrays is
    sum(sums[:, m]) / sum(counts[:, m]).

    * acc@k/j: the target's token is in the drafter's depth-j top-k.
    * tau_chain/K: 1 + sum_{j<=K} prod_{i<=j} 1[rank_i(t) = 0] per position (the accepted length of a greedy chain
      of K drafts, bonus counted), over the positions where depth K is defined; tau_tree@k/K the same with
      1[rank_i(t) < k] (a full k-ary tree of depth K).
    * cond@1/j: depth j right given depths < j were right.
    """
    depth = ranks.shape[0]
    valid = ranks >= 0  # (J, P); valid at depth j implies valid at every depth < j
    names, sums, counts = [], [], []
    for k in top_ks:
        hit = valid & (ranks < k)
        joint = np.cumprod(hit, axis=0)  # all depths <= j in the top-k
        for j in range(depth):
            names.append(f"acc@{k}/{j + 1}")
            sums.append(hit[j].sum())
            counts.append(valid[j].sum())
        for j in range(depth):  # accepted length of a K = j + 1 chain (k = 1) / full k-ary tree, bonus counted
            names.append(("tau_chain" if k == 1 else f"tau_tree@{k}") + f"/{j + 1}")
            sums.append((1 + joint[: j + 1].sum(0))[valid[j]].sum())
            counts.append(valid[j].sum())
        if k == 1:
            for j in range(depth):  # acceptance at depth j given depths < j were right
                names.append(f"cond@1/{j + 1}")
                previous = joint[j - 1] if j else np.ones_like(hit[0])
                sums.append((joint[j] & valid[j]).sum())
                counts.append((previous & valid[j]).sum())
    return names, np.asarray(sums, dtype=np.float64), np.asarray(counts, dtype=np.float64)


def bootstrap_weights(num_clusters: int, num_resamples: int, seed: int = 0) -> np.ndarray:
    """(B, C) multiplicities of a cluster bootstrap: each row resamples the C clusters with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_clusters, np.full(num_clusters, 1.0 / num_clusters), size=num_resamples).astype(
        np.float64
    )


def ratio(num, den):
    """num / den elementwise, NaN where den == 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap `samples` (B, M) per column (NaN samples ignored)."""
    alpha = (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no positions at that depth)
        return np.nanquantile(samples, alpha, axis=0), np.nanquantile(samples, 1 - alpha, axis=0)


def point_and_interval(
    sums: np.ndarray, counts: np.ndarray, num_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    `(value, low, high)` (M,) of every metric from per-cluster sums and counts (C, M): the ratio of the summed sums
    and counts, and its cluster-bootstrap percentile interval (`num_resamples` resamples of the C clusters; NaN
    bounds with `num_resamples=0`).
    """
    value = ratio(sums.sum(0), counts.sum(0))
    if num_resamples <= 0 or len(sums) == 0:
        return value, np.full_like(value, np.nan), np.full_like(value, np.nan)
    weights = bootstrap_weights(len(sums), num_resamples, seed)
    low, high = percentile_interval(ratio(weights @ sums, weights @ counts), confidence)
    return value, low, high
