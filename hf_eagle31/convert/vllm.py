# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The vLLM format: an EAGLE-style Llama config (`LlamaForCausalLMEagle3`) with every switch and the aux layers
(`eagle_aux_hidden_state_layer_ids`, input of layer i, ascending) at the top level, and `layers.N.*` weights under our
names. `norm_output: true` has one meaning here: the next chain step gets the post-norm state.
"""

from pathlib import Path

from ..errors import InputError
from .neutral import SWITCHES, TARGET_LAYERS_KEY, DrafterCheckpoint, dtype_name, llama_fields, read_llama_style


ARCHITECTURE = "LlamaForCausalLMEagle3"


def read(directory: Path, config: dict, weights: dict, target_config, layer_ids, norm_output_semantics=None):
    if norm_output_semantics == "pre-norm-feed" and config.get("norm_output"):
        raise InputError(
            f"{directory} is a vLLM-layout checkpoint (`layers.N.*`), whose norm_output: true means post-norm-feed "
            "for every reader: drop --norm-output-semantics pre-norm-feed (it applies to SpecForge `midlayer` exports)."
        )
    return read_llama_style(directory, config, dict(weights), "vllm", target_config, layer_ids)


def write_config(ckpt: DrafterCheckpoint) -> dict:
    cfg = ckpt.config
    config = {"architectures": [ARCHITECTURE], "model_type": "llama"}
    config.update(llama_fields(cfg, dtype_name(ckpt.state_dict)))
    config["draft_vocab_size"] = cfg.draft_vocab_size
    # vLLM reads every switch at the top level; written even when False because a missing norm_before_residual
    # is read as True on vLLM's speculators path.
    config["target_hidden_size"] = cfg.target_hidden_size
    config.update({name: bool(getattr(cfg, name)) for name in SWITCHES})
    config["eagle_aux_hidden_state_layer_ids"] = list(cfg.target_layer_ids)
    if cfg.target_num_hidden_layers is not None:
        config[TARGET_LAYERS_KEY] = cfg.target_num_hidden_layers
    return config
