# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Batches of training rows: right padding, so that every row keeps the rotary positions 0..n-1 the target saw."""

import torch

from ..errors import InputError


class DrafterDataCollator:
    """
    Right-pads rows of `input_ids`, `loss_mask` (and, offline, `target_hidden_states`, `target_final_hidden`,
    `teacher_argmax`) and adds `attention_mask`. Right padding keeps rotary positions 0..n-1 in every row, as the
    target saw them; padded positions are masked out of the loss.
    """

    def __init__(self, pad_token_id: int = 0, max_length: int | None = None):
        self.pad_token_id = pad_token_id
        self.max_length = max_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [min(len(r["input_ids"]), self.max_length or len(r["input_ids"])) for r in rows]
        if min(lengths) == 0:
            raise InputError("a training row has no tokens: drop empty rows when preparing data (prepare-data does).")
        width = max(lengths)
        batch = {}
        pads = {"input_ids": self.pad_token_id, "loss_mask": 0, "teacher_argmax": -1}
        for key in rows[0]:
            if key not in pads and key not in ("target_hidden_states", "target_final_hidden"):
                continue  # e.g. the `messages` text column
            values = [torch.as_tensor(r[key])[: lengths[i]] for i, r in enumerate(rows)]
            shape = (len(rows), width, *values[0].shape[1:])
            dtype = values[0].dtype if values[0].is_floating_point() else torch.long
            out = torch.full(shape, pads.get(key, 0), dtype=dtype)
            for i, v in enumerate(values):
                out[i, : lengths[i]] = v
            batch[key] = out
        attention = torch.zeros(len(rows), width, dtype=torch.long)
        for i, n in enumerate(lengths):
            attention[i, :n] = 1
        batch["attention_mask"] = attention
        return batch
