# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""The train-time-test (TTT) loss: soft cross-entropy (or an acceptance-rate objective) of each unrolled chain step
against the target's distribution, decayed per step (EAGLE-3)."""

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..errors import InputError


DEFAULT_TTT_STEPS = 7  # EAGLE-3's unroll length
DEFAULT_TTT_DECAY = 0.8


def ttt_loss(
    step_logits: list[torch.Tensor],
    teacher_logits: torch.Tensor,
    teacher_argmax: torch.Tensor,
    t2d: torch.Tensor,
    loss_mask: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    decay: float = DEFAULT_TTT_DECAY,
    chunk_size: int = 0,
    objective: str = "soft_ce",
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Train-time-test loss of one batch, *not* normalized (the caller divides by the token count it chooses).

    step_logits: list of (B, n, D) drafter logits, one per TTT step (`drafter.ttt_forward`).
    teacher_logits: (B, n, D) the target's logits at every position restricted to the draft vocabulary.
    teacher_argmax: (B, n) the target's argmax over its *full* vocabulary (negative = unknown, masked).
    t2d: (V,) bool, target ids inside the draft vocabulary. loss_mask / attention_mask: (B, n).
    chunk_size: > 0 computes the soft cross-entropy in chunks of that many positions under activation checkpointing:
        backward keeps only the step logits themselves (in their dtype) instead of two fp32 (M, D) tensors per step
        (log-softmax and teacher probabilities), and recomputes each chunk's softmaxes (same loss and gradients;
        0 = all at once).
    objective: the per-position loss, a key of `LOSS_OBJECTIVES` (default "soft_ce"; "lk_alpha" / "lk_hybrid": the
        acceptance-rate objectives, see there). `stats[0]` holds that loss's per-step sums.

    Returns `(weighted_sum, stats)`: `stats` is a (3, steps) tensor of per-step CE sums, correct counts (drafter
    argmax == teacher argmax) and valid-position counts.
    """
    if objective not in LOSS_OBJECTIVES:
        raise InputError(f"unknown loss objective {objective!r}: use one of {', '.join(LOSS_OBJECTIVES)}.")
    per_position = LOSS_OBJECTIVES[objective]
    bsz, n = loss_mask.shape
    steps = len(step_logits)
    present = loss_mask.bool()
    if attention_mask is not None:
        present = present & attention_mask.bool()
    in_draft = (teacher_argmax >= 0) & t2d[teacher_argmax.clamp(min=0)]  # (B, n): target's pick is draftable
    # Zero, but part of the graph: a batch without a single valid position (no assistant token, or none the draft
    # vocabulary can express) still backpropagates (zero gradients) instead of failing; DDP ranks stay in step.
    total = (step_logits[0].flatten()[:1].float() * 0.0).sum()
    stats = torch.zeros(3, steps, device=loss_mask.device)
    for j, logits in enumerate(step_logits):
        k = n - 2 - j  # positions t = 0..k-1 have a token x_{t+2+j} to predict
        if k <= 0:
            continue
        valid = present[:, 2 + j : 2 + j + k] & in_draft[:, 1 + j : 1 + j + k]  # (B, k)
        if not valid.any():
            continue
        if chunk_size > 0 and logits.requires_grad:
            # Backward keeps views of the logits (no copies) and the positions; each chunk's fp32 softmaxes are
            # recomputed in backward.
            rows, cols = valid.nonzero(as_tuple=True)
            student_all, teacher_all = logits[:, :k], teacher_logits[:, 1 + j : 1 + j + k]
            ce = torch.cat(
                [
                    checkpoint(_loss_at, per_position, student_all, teacher_all, r, c, use_reentrant=False)
                    for r, c in zip(rows.split(chunk_size), cols.split(chunk_size))
                ]
            )
            with torch.no_grad():
                picks = logits[:, :k].argmax(-1)[valid], teacher_all.argmax(-1)[valid]  # no (M, D) copies
        else:
            student = logits[:, :k][valid]  # (M, D): only the positions that count
            teacher = teacher_logits[:, 1 + j : 1 + j + k][valid]  # (M, D)
            ce = per_position(student, teacher)
            picks = student.detach().argmax(-1), teacher.argmax(-1)
        total = total + (decay**j) * ce.sum()
        stats[0, j] = ce.detach().sum()
        stats[1, j] = (picks[0] == picks[1]).sum()
        stats[2, j] = valid.sum()
    return total, stats


def _soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(M,) cross-entropy of fp32 student logits against the softmax of the teacher's (soft targets)."""
    return F.cross_entropy(student.float(), teacher.float().softmax(-1), reduction="none")


def _loss_at(per_position, student, teacher, rows, cols):
    """`per_position` at the positions (rows, cols) of (B, k, D) student / teacher logits."""
    return per_position(student[rows, cols], teacher[rows, cols])


# Acceptance-rate objectives. The LK losses (arXiv 2602.23881) train the drafter on the acceptance rate itself
# instead of its KL proxy. Speculative sampling accepts a draft from q with probability
# alpha = sum_x min(p(x), q(x)) = 1 - TV(p, q) (p the target's, here over the draft vocabulary). "lk_alpha" minimizes
# -log(alpha) per position; "lk_hybrid" adds it to the soft cross-entropy (KL keeps a gradient on tokens where q has
# no mass yet; -log alpha pushes what the capacity-limited drafter gets right towards acceptance). Written from the
# objective's definition; the paper's weighting schedules are not reproduced.


def acceptance_rate(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(M,) alpha = sum_x min(p, q) of the softmaxes of teacher (p) and student (q) logits (M, D), fp32."""
    return torch.minimum(student.float().softmax(-1), teacher.float().softmax(-1)).sum(-1)


def _lk_alpha(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(M,) -log(alpha): the negative log acceptance rate of speculative sampling (0 when q == p)."""
    return -torch.log(acceptance_rate(student, teacher).clamp(min=1e-6))


def _lk_hybrid(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(M,) soft cross-entropy + -log(alpha)."""
    return _soft_cross_entropy(student, teacher) + _lk_alpha(student, teacher)


LOSS_OBJECTIVES = {"soft_ce": _soft_cross_entropy, "lk_alpha": _lk_alpha, "lk_hybrid": _lk_hybrid}


def loss_token_count(loss_mask: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """N of the normalization: assistant positions step 0 predicts (`loss_mask` of x_{t+2}, t = 0..n-3)."""
    mask = loss_mask[:, 2:].bool()
    if attention_mask is not None:
        mask = mask & attention_mask[:, 2:].bool()
    return mask.sum()
