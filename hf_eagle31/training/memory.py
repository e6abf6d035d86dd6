# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""What one training step holds in memory, term by term (`hf-eagle31 train --estimate-memory`)."""

import torch
from transformers import PretrainedConfig

from ..modeling import DRAFTER_CLASSES
from ..modeling.drafter_common import DrafterPreTrainedModel
from ..utils import text_config


def estimate_step_memory(
    target_config: PretrainedConfig,
    drafter_config: PretrainedConfig,
    batch_size: int,
    seq_len: int,
    ttt_steps: int,
    target_bytes: int = 2,
    drafter_bytes: int = 4,
    online: bool = True,
    loss_chunk_size: int = 0,
) -> dict[str, int]:
    """
    Rough per-step memory (bytes) of drafter training, by term. The drafter logits of every TTT step are kept for
    backward (ttt_steps x B x n x D, plus their softmax for the loss); teacher logits exist once over the draft
    vocabulary (B x n x D); the target's full-vocabulary logits are never formed (argmax in chunks of 1024
    positions). Online adds the target's weights and one forward's activations (no grad, freed layer by layer).
    With `loss_chunk_size` the softmaxes exist for one chunk at a time and only the logits are kept.
    """
    text = text_config(target_config)
    h, v, layers = text.hidden_size, text.vocab_size, text.num_hidden_layers
    d, hd = drafter_config.draft_vocab_size, drafter_config.hidden_size
    tokens = batch_size * seq_len
    drafter_params = sum(p.numel() for p in build_drafter_like(drafter_config).parameters() if p.requires_grad)
    taps = len(drafter_config.target_layer_ids)
    if loss_chunk_size:
        loss_terms = {
            "drafter logits kept for backward (all TTT steps, fp32)": ttt_steps * tokens * d * 4,
            "loss softmaxes of one chunk (fp32, recomputed in backward)": min(tokens, loss_chunk_size) * d * 4 * 3,
        }
    else:
        loss_terms = {
            "drafter logits kept for backward (all TTT steps, fp32, x2 for softmax)": ttt_steps * tokens * d * 4 * 2
        }
    terms = {
        "drafter weights + grads + Adam (fp32)": drafter_params * 16,
        **loss_terms,
        "drafter activations (per TTT step, ~12 H-wide tensors a layer)": ttt_steps
        * tokens
        * hd
        * 12
        * getattr(drafter_config, "num_hidden_layers", 1)
        * drafter_bytes,
        "teacher logits over the draft vocabulary (fp32)": tokens * d * 4,
        "target features (taps + final state)": tokens * (taps + 1) * h * target_bytes,
        "full-vocabulary argmax chunk (fp32)": min(tokens, 1024) * v * 4,
    }
    if online:
        target_params = layers * (4 * h * h + 3 * h * text.intermediate_size) + 2 * v * h
        terms["target weights"] = target_params * target_bytes
        terms["target forward activations (one layer at a time, no grad)"] = (
            tokens * (h * 4 + text.intermediate_size * 2) * target_bytes
        )
    terms["total"] = sum(terms.values())
    return terms


def build_drafter_like(drafter_config: PretrainedConfig) -> DrafterPreTrainedModel:
    """An empty-weight copy of a drafter (for parameter counts) without allocating memory."""
    with torch.device("meta"):
        return DRAFTER_CLASSES[drafter_config.model_type](drafter_config)
