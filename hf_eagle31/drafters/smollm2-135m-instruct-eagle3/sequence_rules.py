# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
How the target picks its token and when a sequence ends, for the speculation loops (`speculative_decoding.py`,
`batched_decoding.py`): the caller's logits processors, the eos and length cuts of accepted tokens, and stopping
criteria decided on the host where they can be (no device read per cycle).

This file travels with every Hub checkpoint (remote code): it imports torch and transformers only.
"""

import torch


class TargetChoice:
    """How the target picks a token from its logits: the caller's logits processors, then argmax or a sample."""

    def __init__(self, logits_processor, do_sample: bool):
        self.logits_processor, self.do_sample = logits_processor, do_sample

    def process(self, prefix_ids, row):
        """(1, V) processed logits of `row` after `prefix_ids` (the row itself without processors)."""
        return self.logits_processor(prefix_ids, row.clone()) if len(self.logits_processor) else row

    def choose(self, prefix_ids, rows):
        """The target's next token of each row, (B,), from its raw (B, V) `rows` after `prefix_ids` (B, L): a sample
        or the argmax of the processed logits; also returns those processed logits."""
        processed = self.process(prefix_ids, rows)
        if self.do_sample:
            return torch.multinomial(processed.softmax(-1), 1)[:, 0], processed
        return processed.argmax(-1), processed


def eos_ids(generation_config) -> set:
    eos = getattr(generation_config, "_eos_token_tensor", None)
    return set(eos.flatten().tolist()) if eos is not None else set()  # one host read per call


def trim(emitted, budget, eos):
    """The max length and the first eos cut the accepted tokens, as in transformers' loop."""
    emitted = emitted[:budget]
    for i, token in enumerate(emitted):
        if token in eos:
            return emitted[: i + 1]
    return emitted


def host_stopping_rule(stopping_criteria):
    """Whether every stopping criterion can be decided from host values (max length, eos, max time): then no cycle
    reads the device to stop. Any other criterion is called as transformers calls it."""
    from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria, MaxTimeCriteria

    return all(isinstance(c, (MaxLengthCriteria, EosTokenCriteria, MaxTimeCriteria)) for c in stopping_criteria)
