# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The vllm-project/speculators format (0.9.0's `save_pretrained`): `speculators_model_type: eagle3`, the Llama layer
config in `transformer_layer_config`, switches and aux layers at the top level, `layers.N.*` weights under our names,
no `d2t` / `t2d` for a full draft vocabulary. speculators 0.9.0 loads a checkpoint without `embed_tokens.weight` with
zero embeddings (see `checkpoint.settle_embeddings`, which writes the target's or refuses).
"""

from pathlib import Path

import torch
from transformers import LlamaConfig

from ..errors import InputError
from .neutral import (
    DRAFTER_READ,
    LLAMA_NO_EFFECT,
    LLAMA_READ,
    SWITCHES,
    TARGET_LAYERS_KEY,
    DrafterCheckpoint,
    check_config_keys,
    config_from_llama_dict,
    dtype_name,
    llama_fields,
    resolve_layer_ids,
    target_layers,
)


ARCHITECTURE = "Eagle3Speculator"  # as in published speculators checkpoints (0.9 writes Eagle3DraftModel)
# The top level of a speculators 0.9 eagle3 config.json (besides transformers' metadata): what `read` reads, and
# `speculators_config` (the proposal methods: serving policy, not the drafter's function; `verifier` and
# `speculative_tokens` read). Anything else is refused (`neutral.check_config_keys`).
TOP_LEVEL_KEYS = DRAFTER_READ | {
    TARGET_LAYERS_KEY, "speculators_model_type", "speculators_version", "speculators_config",
    "transformer_layer_config", "embed_requires_grad", "architectures", "auto_map", "model_type", "dtype",
    "torch_dtype", "tie_word_embeddings", "transformers_version",
}  # fmt: skip


def read(directory: Path, config: dict, weights: dict, target_config, layer_ids, norm_output_semantics=None):
    algorithm = config.get("speculators_model_type")
    if algorithm != "eagle3":
        raise InputError(
            f"{directory} is a speculators `{algorithm}` checkpoint: only `eagle3` converts to an EAGLE-3 drafter."
        )
    if norm_output_semantics == "pre-norm-feed" and config.get("norm_output"):
        raise InputError(
            f"{directory} is a speculators checkpoint, whose norm_output: true means post-norm-feed for every reader: "
            "drop --norm-output-semantics pre-norm-feed (it applies to SpecForge `midlayer` exports)."
        )
    layer = dict(config["transformer_layer_config"])
    if layer.get("model_type", "llama") != "llama":
        raise InputError(
            f"{directory} has `{layer.get('model_type')}` draft layers: only the Llama-style layers of EAGLE-3 (no "
            "q/k norms) convert; retrain or export with model_type llama."
        )
    if layer.get("mlp_bias"):
        raise InputError(f"{directory} uses mlp_bias=True, which the EAGLE-3 drafter does not have.")
    where = directory / "config.json"
    check_config_keys(config, TOP_LEVEL_KEYS, str(where), "speculators")
    check_config_keys(layer, LLAMA_READ | LLAMA_NO_EFFECT, f"{where} transformer_layer_config", "speculators")
    verifier = dict((config.get("speculators_config") or {}).get("verifier") or {})
    proposals = (config.get("speculators_config") or {}).get("proposal_methods") or [{}]
    num_layers = target_layers(config, target_config)
    ids = resolve_layer_ids(config, "speculators", num_layers, layer_ids)
    vocab_size = layer["vocab_size"]
    draft_vocab = config.get("draft_vocab_size") or vocab_size
    state = dict(weights)
    if draft_vocab == vocab_size and "d2t" not in state:
        # speculators keeps no mapping buffers when the draft vocabulary is the whole vocabulary: identity.
        state["d2t"] = torch.zeros(draft_vocab, dtype=torch.long)
        state["t2d"] = torch.ones(vocab_size, dtype=torch.bool)
    layer["draft_vocab_size"] = draft_vocab
    cfg = config_from_llama_dict(
        layer,
        vocab_size=vocab_size,
        layer_ids=ids,
        num_layers=num_layers,
        extra=dict(
            target_hidden_size=config.get("target_hidden_size") or layer["hidden_size"],
            **{name: bool(config.get(name, False)) for name in SWITCHES},
        ),
    )
    if config.get("embed_requires_grad"):
        cfg.embed_requires_grad = True  # trained embeddings: they legitimately differ from the target's
    return DrafterCheckpoint(
        cfg, state, "speculators", verifier=verifier, speculative_tokens=proposals[0].get("speculative_tokens")
    )


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
