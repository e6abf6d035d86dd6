# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Shared pieces of the drafter configurations: reading the sizes a drafter inherits from its target."""

from typing import Any


# Fields a drafter copies from the target's (text) config. `None` = required, anything else = default.
_TARGET_FIELDS = {
    "hidden_size": None,
    "num_hidden_layers": None,
    "num_attention_heads": None,
    "vocab_size": None,
    "intermediate_size": None,
    "num_key_value_heads": "num_attention_heads",  # falls back to MHA
    "head_dim": None,  # derived below when absent
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 4096,
    "hidden_act": "silu",
}

VARIANT_SWITCHES = {
    "eagle3": {"fc_norm": False, "norm_output": False},
    "eagle3.1": {"fc_norm": True, "norm_output": True},
}


def read_target_config(target_config: Any) -> dict:
    """Returns the target sizes a drafter needs, or raises a ValueError naming the missing field."""
    if hasattr(target_config, "get_text_config"):
        target_config = target_config.get_text_config()
    if isinstance(target_config, dict):
        get = target_config.get
        model_type = target_config.get("model_type")
    else:

        def get(name, default=None):
            return getattr(target_config, name, default)

        model_type = getattr(target_config, "model_type", None)

    fields = {}
    for name, default in _TARGET_FIELDS.items():
        value = get(name, None)
        if value is None and name == "num_key_value_heads":
            value = fields["num_attention_heads"]
        elif value is None and name == "head_dim":
            value = fields["hidden_size"] // fields["num_attention_heads"]
        elif value is None and default is None:
            raise ValueError(
                f"target config ({model_type or type(target_config).__name__}) has no `{name}`: pass the target's "
                f"text config (e.g. `model.config.get_text_config()`) or set `{name}=` explicitly in the overrides."
            )
        elif value is None:
            value = default
        fields[name] = value

    rope_theta = get("rope_theta", None)
    rope_scaling = get("rope_scaling", None)
    rope_parameters = get("rope_parameters", None)  # transformers >= 5 keeps rope settings here
    if isinstance(rope_parameters, dict):
        rope_theta = rope_parameters.get("rope_theta", rope_theta)
        if rope_parameters.get("rope_type", "default") != "default":
            rope_scaling = {k: v for k, v in rope_parameters.items() if k != "rope_theta"}
    fields["rope_theta"] = float(rope_theta) if rope_theta is not None else 10000.0
    fields["rope_scaling"] = rope_scaling
    fields["model_type"] = model_type
    for token in ("bos_token_id", "eos_token_id", "pad_token_id"):
        fields[token] = get(token, None)
    return fields


def default_target_layer_ids(num_hidden_layers: int) -> list[int]:
    """EAGLE-3's low/mid/high taps: indices into `hidden_states` (= the *inputs* of decoder layers 2, L//2, L-3)."""
    return [2, num_hidden_layers // 2, num_hidden_layers - 3]


def validate_target_layer_ids(target_layer_ids, target_num_hidden_layers, expected_count=None) -> list[int]:
    ids = [int(i) for i in target_layer_ids]
    if expected_count is not None and len(ids) != expected_count:
        raise ValueError(
            f"target_layer_ids={ids} has {len(ids)} entries but this drafter fuses {expected_count} target hidden "
            f"states: give exactly {expected_count} indices into the target's `hidden_states`."
        )
    if target_num_hidden_layers is not None:
        for i in ids:
            if not 0 <= i <= target_num_hidden_layers:
                raise ValueError(
                    f"target layer id {i} is out of range for a target with {target_num_hidden_layers} layers: ids "
                    f"index `hidden_states` (0 = embeddings, {target_num_hidden_layers} = last layer output), so use "
                    f"values in [0, {target_num_hidden_layers}]."
                )
    return ids


def check_variant(variant: str) -> dict:
    if variant not in VARIANT_SWITCHES:
        raise ValueError(f"unknown variant {variant!r}: use one of {sorted(VARIANT_SWITCHES)}.")
    return dict(VARIANT_SWITCHES[variant])
