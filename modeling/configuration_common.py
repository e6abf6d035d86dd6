# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Shared pieces of the drafter configurations: reading the sizes a drafter inherits from its target."""

from typing import Any

from transformers import PretrainedConfig


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


class DrafterConfig(PretrainedConfig):
    """
    Fields every drafter shares (see [`Eagle3Config`] for their meaning). Subclasses set
    `num_target_hidden_states` and `default_layer_ids`, and add their own switches.
    """

    keys_to_ignore_at_inference = ["cache", "past_key_values"]
    num_target_hidden_states = 1

    @staticmethod
    def default_layer_ids(num_hidden_layers):
        raise NotImplementedError

    def __init__(
        self,
        vocab_size=32000,
        draft_vocab_size=None,
        hidden_size=4096,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=None,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        max_position_embeddings=8192,
        rope_parameters=None,
        attention_bias=False,
        target_hidden_size=None,
        target_layer_ids=None,
        target_num_hidden_layers=None,
        norm_output=False,
        embeddings_in_checkpoint=True,
        initializer_range=0.02,
        tie_word_embeddings=False,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.draft_vocab_size = draft_vocab_size if draft_vocab_size is not None else vocab_size
        if self.draft_vocab_size > vocab_size:
            raise ValueError(
                f"draft_vocab_size={self.draft_vocab_size} exceeds vocab_size={vocab_size}: the draft vocabulary is a "
                "subset of the target's, so choose draft_vocab_size <= vocab_size."
            )
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads if num_key_value_heads is not None else num_attention_heads
        self.head_dim = head_dim if head_dim is not None else hidden_size // num_attention_heads
        self.hidden_act = hidden_act
        self.rms_norm_eps = rms_norm_eps
        self.max_position_embeddings = max_position_embeddings
        self.rope_parameters = rope_parameters
        self.attention_bias = attention_bias
        self.target_hidden_size = target_hidden_size if target_hidden_size is not None else hidden_size
        self.target_num_hidden_layers = target_num_hidden_layers
        if target_layer_ids is None and target_num_hidden_layers is not None:
            target_layer_ids = self.default_layer_ids(target_num_hidden_layers)
        if target_layer_ids is not None:
            target_layer_ids = validate_target_layer_ids(
                target_layer_ids, target_num_hidden_layers, self.num_target_hidden_states
            )
        self.target_layer_ids = target_layer_ids
        self.norm_output = bool(norm_output)
        self.embeddings_in_checkpoint = bool(embeddings_in_checkpoint)
        self.initializer_range = initializer_range
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @classmethod
    def target_kwargs(cls, target_config, draft_vocab_size=None):
        """The constructor arguments a drafter of this class inherits from `target_config`."""
        target = read_target_config(target_config)
        return dict(
            vocab_size=target["vocab_size"],
            draft_vocab_size=draft_vocab_size,
            hidden_size=target["hidden_size"],
            intermediate_size=target["intermediate_size"],
            num_attention_heads=target["num_attention_heads"],
            num_key_value_heads=target["num_key_value_heads"],
            head_dim=target["head_dim"],
            hidden_act=target["hidden_act"],
            rms_norm_eps=target["rms_norm_eps"],
            max_position_embeddings=target["max_position_embeddings"],
            rope_parameters={"rope_type": "default", "rope_theta": target["rope_theta"]},
            target_hidden_size=target["hidden_size"],
            target_num_hidden_layers=target["num_hidden_layers"],
            target_layer_ids=cls.default_layer_ids(target["num_hidden_layers"]),
            bos_token_id=target["bos_token_id"],
            eos_token_id=target["eos_token_id"],
            pad_token_id=target["pad_token_id"],
            target_model_type=target["model_type"],
        )
