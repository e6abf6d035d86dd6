# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The vllm-project/speculators format (0.9.0's `save_pretrained`): `speculators_model_type: eagle3`, the Llama layer
config in `transformer_layer_config`, switches and aux layers at the top level, `layers.N.*` weights under our names,
no `d2t` / `t2d` for a full draft vocabulary. speculators 0.9.0 loads a checkpoint without `embed_tokens.weight` with
zero embeddings (see `checkpoint.settle_embeddings`, which writes the target's or refuses).
"""

from transformers import LlamaConfig

from ..errors import InputError
from .neutral import SWITCHES, TARGET_LAYERS_KEY, DrafterCheckpoint, dtype_name, llama_fields


ARCHITECTURE = "Eagle3Speculator"  # as in published speculators checkpoints (0.9 writes Eagle3DraftModel)
# Reading (the keys a speculators config may hold, `norm_before_residual` read two ways when absent, a draft
# vocabulary given twice): `modeling/checkpoint_formats.py` (`read_speculators`), shared with
# `Eagle3Drafter.from_pretrained`.


def write_config(ckpt: DrafterCheckpoint, num_speculative_tokens) -> dict:
    cfg = ckpt.config
    # speculators serializes its layer config with `LlamaConfig(...).to_diff_dict()`; so do we.
    layer = LlamaConfig(**llama_fields(cfg, dtype_name(ckpt.state_dict))).to_diff_dict()
    layer["model_type"] = "llama"
    verifier = {
        "architectures": list(ckpt.verifier.get("architectures") or []),
        "name_or_path": ckpt.verifier.get("name_or_path"),
    }
    tokens = num_speculative_tokens or ckpt.speculative_tokens or 3
    config = {
        "architectures": [ARCHITECTURE],
        "speculators_model_type": "eagle3",
        "speculators_version": "0.9.0",
        "speculators_config": {
            "algorithm": "eagle3",
            "default_proposal_method": "greedy",
            "proposal_methods": [
                {
                    "accept_tolerance": 0.0,
                    "proposal_type": "greedy",
                    "speculative_tokens": int(tokens),
                    "verifier_accept_k": 1,
                }
            ],
            "verifier": verifier,
        },
        "transformer_layer_config": layer,
        "draft_vocab_size": cfg.draft_vocab_size,
        "target_hidden_size": cfg.target_hidden_size if cfg.target_hidden_size != cfg.hidden_size else None,
        "eagle_aux_hidden_state_layer_ids": list(cfg.target_layer_ids),
        "embed_requires_grad": bool(getattr(cfg, "embed_requires_grad", False)),
        "tie_word_embeddings": False,
        "dtype": dtype_name(ckpt.state_dict),
        **{name: bool(getattr(cfg, name)) for name in SWITCHES},
    }
    if cfg.target_num_hidden_layers is not None:
        config[TARGET_LAYERS_KEY] = cfg.target_num_hidden_layers
    return config


def write(ckpt: DrafterCheckpoint, num_speculative_tokens=None):
    """(state dict, config) of the speculators format."""
    cfg = ckpt.config
    state = dict(ckpt.state_dict)
    if cfg.draft_vocab_size == cfg.vocab_size:
        # speculators registers no mapping buffers for a full draft vocabulary; ours must then be identity.
        if state["d2t"].any() or not state["t2d"].all():
            raise InputError("draft_vocab_size == vocab_size but d2t is not the identity: corrupt checkpoint.")
        del state["d2t"], state["t2d"]
    return state, write_config(ckpt, num_speculative_tokens)
