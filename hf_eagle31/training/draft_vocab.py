# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Draft vocabulary: the D target tokens the drafter can propose (its `lm_head` has D rows instead of V).

EAGLE-3 picks the D most frequent target tokens of the training data; a drafter loses only the proposals whose
token is outside that set, so the number that matters is the *coverage*: the share of training targets (loss-masked
tokens, i.e. the tokens the drafter is asked to predict) that fall inside the draft vocabulary.
"""

from dataclasses import dataclass

import torch
from transformers.utils import logging

from ..errors import InputError


logger = logging.get_logger(__name__)


@dataclass
class DraftVocab:
    """`target_ids` (D,) ascending; `d2t`/`t2d` in the EAGLE convention (target id = draft id + d2t[draft id])."""

    target_ids: torch.Tensor
    d2t: torch.Tensor
    t2d: torch.Tensor
    coverage: float  # share of counted training tokens inside the draft vocabulary
    counted_tokens: int

    def apply(self, drafter):
        """Installs this vocabulary in `drafter` (`d2t`/`t2d` buffers)."""
        drafter.set_draft_vocab(self.target_ids)
        return drafter


def count_token_frequencies(dataset, vocab_size, assistant_only=True):
    """
    Frequencies (V,) of target tokens in a prepared dataset (`input_ids`, `loss_mask` columns, or an iterable of
    such dicts). With `assistant_only` only loss-masked tokens count: those are the tokens the drafter predicts.
    """
    counts = torch.zeros(vocab_size, dtype=torch.long)
    for row in dataset:
        ids = torch.as_tensor(row["input_ids"], dtype=torch.long).flatten()
        if assistant_only:
            ids = ids[torch.as_tensor(row["loss_mask"], dtype=torch.bool).flatten()]
        if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
            raise InputError(
                f"token id {int(ids.max())} is outside the target vocabulary of {vocab_size}: the data was prepared "
                "with another tokenizer; run `hf-eagle31 prepare-data` with this target."
            )
        counts += torch.bincount(ids, minlength=vocab_size)
    return counts


def build_draft_vocab(counts, draft_vocab_size):
    """
    Top-`draft_vocab_size` tokens by frequency (ties: lower id first, so the result is deterministic). When fewer
    distinct tokens occur than D, the remaining slots take the lowest unused ids (they cost nothing: never targets).
    """
    counts = torch.as_tensor(counts, dtype=torch.long)
    vocab_size = counts.numel()
    if not 0 < draft_vocab_size <= vocab_size:
        raise InputError(f"draft_vocab_size={draft_vocab_size} must lie in [1, vocab_size={vocab_size}].")
    # Stable descending sort on counts: equal counts keep ascending id order.
    order = torch.sort(counts, descending=True, stable=True).indices
    target_ids = order[:draft_vocab_size].sort().values
    t2d = torch.zeros(vocab_size, dtype=torch.bool)
    t2d[target_ids] = True
    total = int(counts.sum())
    coverage = float(counts[t2d].sum()) / total if total else 0.0
    d2t = target_ids - torch.arange(draft_vocab_size)
    return DraftVocab(target_ids=target_ids, d2t=d2t, t2d=t2d, coverage=coverage, counted_tokens=total)


def draft_vocab_from_dataset(dataset, vocab_size, draft_vocab_size, assistant_only=True, verbose=True):
    """`count_token_frequencies` + `build_draft_vocab`; logs the coverage at INFO level (it is the number to look at;
    `hf-eagle31 train` shows it)."""
    vocab = build_draft_vocab(count_token_frequencies(dataset, vocab_size, assistant_only), draft_vocab_size)
    if verbose:
        logger.info(
            "draft vocabulary: %d/%d target tokens cover %.2f%% of %d training %stokens",
            draft_vocab_size,
            vocab_size,
            100 * vocab.coverage,
            vocab.counted_tokens,
            "assistant " if assistant_only else "",
        )
    return vocab


__all__ = ["DraftVocab", "count_token_frequencies", "build_draft_vocab", "draft_vocab_from_dataset"]
