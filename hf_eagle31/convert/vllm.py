# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The vLLM format: an EAGLE-style Llama config (`LlamaForCausalLMEagle3`) with every switch and the aux layers
(`eagle_aux_hidden_state_layer_ids`, input of layer i, ascending) at the top level, and `layers.N.*` weights under our
names. `norm_output: true` has one meaning here: the next chain step gets the post-norm state.
"""

from ..modeling.checkpoint_formats import EAGLE_ARCHITECTURE
from .neutral import SWITCHES, TARGET_LAYERS_KEY, DrafterCheckpoint, dtype_name, llama_fields


ARCHITECTURE = EAGLE_ARCHITECTURE
# Reading (`layers.N`, or `midlayer` read as vLLM renames and runs it): `modeling/checkpoint_formats.py`
# (`read_vllm`), shared with `Eagle3Drafter.from_pretrained`.


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
