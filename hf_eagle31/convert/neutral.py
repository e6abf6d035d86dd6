# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The format-neutral drafter checkpoint and what every format module shares for writing: [`DrafterCheckpoint`] (an
`Eagle3Config` + a state dict under our key names, which equal speculators' and vLLM's), writing weight files, the
Llama-config fields of foreign configs, and the ascending-layer reorder of vLLM-family exports.

Reading lives in `modeling/checkpoint_formats.py` (exposed as `hf_eagle31.modeling.checkpoint_formats`): the one copy
of the reading rules, which `Eagle3Drafter.from_pretrained` also runs on a foreign layout (converted in memory) and
which travels with every checkpoint as remote code. Its names are re-exported here for the format modules (`native`,
`eagle`, `specforge`, `speculators`, `vllm`) and `checkpoint` (the pipeline: read -> check -> settle embeddings ->
write).
"""

from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers.utils import logging

from ..errors import InputError
from ..modeling import Eagle3Config, Eagle3Drafter
from ..modeling import checkpoint_formats as formats
from ..modeling.checkpoint_formats import (  # noqa: F401  (re-exported: the reading rules, one copy)
    DEFAULT_ONLY,
    DRAFTER_READ,
    FORMATS,
    LLAMA_NO_EFFECT,
    LLAMA_READ,
    NORM_OUTPUT_SEMANTICS,
    OPTIONAL_KEYS,
    SEMANTICS_KEY,
    SWITCHES,
    TARGET_LAYERS_KEY,
    DrafterCheckpoint,
    transformers_metadata_keys,
)


logger = logging.get_logger(__name__)  # `hf-eagle31 convert` shows its INFO notes (cli_utils.package_log_messages)

EMBEDDING_MODES = ("auto", "target", "source", "none")
# Who loads a `--to eagle` (midlayer) export of a drafter with switches on (--eagle-consumer).
EAGLE_CONSUMERS = ("safeailab", "specforge")


# ---------------------------------------------------------------------------------------------------------------------
# weights on disk
# ---------------------------------------------------------------------------------------------------------------------


def write_safetensors(state_dict: dict, directory: Path):
    tensors = {k: v.contiguous() for k, v in state_dict.items()}
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


def dtype_name(state_dict: dict) -> str:
    dtype = state_dict["fc.weight"].dtype
    return str(dtype).replace("torch.", "")


# ---------------------------------------------------------------------------------------------------------------------
# Llama-style configs (EAGLE, SpecForge, vLLM configs and speculators' transformer_layer_config)
# ---------------------------------------------------------------------------------------------------------------------


def llama_fields(cfg: Eagle3Config, dtype: str) -> dict:
    """The Llama-config part shared by EAGLE / vLLM configs and speculators' transformer_layer_config."""
    rope = dict(cfg.rope_parameters or {"rope_type": "default", "rope_theta": 10000.0})
    fields = {
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,  # the drafter's depth: layers.0 reads 2H, layers.1.. are Llama's
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": cfg.hidden_act,
        "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings,
        "vocab_size": cfg.vocab_size,
        "rope_theta": float(rope.pop("rope_theta", 10000.0)),
        "attention_bias": cfg.attention_bias,
        "tie_word_embeddings": False,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "torch_dtype": dtype,
    }
    if rope.get("rope_type", "default") != "default":
        fields["rope_scaling"] = rope  # transformers 4 and 5 both read rope_theta + rope_scaling
    return fields


def ascending(ckpt: DrafterCheckpoint, to: str) -> DrafterCheckpoint:
    """vLLM concatenates captured states in ascending layer order: permute fc's input blocks (and fc_norm) to match."""
    ids = list(ckpt.config.target_layer_ids)
    if len(set(ids)) != len(ids):
        raise InputError(
            f"target_layer_ids={ids} repeat a layer; {to} captures each layer once (a set), so the drafter cannot be "
            "served there: train it on distinct layers."
        )
    order = sorted(range(len(ids)), key=ids.__getitem__)
    if order == list(range(len(ids))):
        return ckpt
    logger.warning("target_layer_ids=%s: reordering fc input blocks to ascending layer order for %s.", ids, to)
    state = dict(ckpt.state_dict)
    blocks = state["fc.weight"].chunk(len(ids), dim=1)
    state["fc.weight"] = torch.cat([blocks[i] for i in order], dim=1)
    if ckpt.config.fc_norm:
        norms = [state[f"fc_norm.{i}.weight"] for i in range(len(ids))]
        for new, old in enumerate(order):
            state[f"fc_norm.{new}.weight"] = norms[old]
    if ckpt.config.norm_before_fc:
        blocks = state["input_norm.weight"].chunk(len(ids))
        state["input_norm.weight"] = torch.cat([blocks[i] for i in order])
    config = Eagle3Config.from_dict(ckpt.config.to_dict())
    config.target_layer_ids = [ids[i] for i in order]
    return replace(ckpt, config=config, state_dict=state)


def drafter_from_checkpoint(ckpt: DrafterCheckpoint) -> Eagle3Drafter:
    """An `Eagle3Drafter` holding exactly the checkpoint's tensors (same dtypes: what a conversion writes); embeddings
    ready iff present."""
    return formats.drafter_from_checkpoint(ckpt, Eagle3Drafter, dtype="keep")


def switches_on(cfg) -> list:
    return [name for name in SWITCHES if getattr(cfg, name, False)]
