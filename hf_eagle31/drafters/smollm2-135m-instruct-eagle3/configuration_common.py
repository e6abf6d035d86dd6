# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Shared pieces of the drafter configurations: reading the sizes a drafter inherits from its target, and the checks
every drafter config runs on its keys (unknown keys, foreign checkpoint formats, layer ids, draft vocabulary)."""

import dataclasses
import difflib
import inspect
import operator
import re
from typing import Any

from transformers import GenerationConfig, PretrainedConfig


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

@dataclasses.dataclass(frozen=True)
class Variant:
    """
    One drafter variant. `config_class` / `drafter_class` name classes of this folder (resolved by
    `hf_eagle31.modeling.variant_classes`, so this file imports none of them); `switches` are the config fields the
    variant sets in `from_target`; `label` and `tags` are what model cards and reports call it.
    """

    name: str
    label: str
    model_type: str
    config_class: str
    drafter_class: str
    switches: dict[str, bool]
    tags: tuple[str, ...]


# The variant registry: the one table of variant name -> config class, drafter class and switches.
VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("eagle3", "EAGLE-3", "eagle3_drafter", "Eagle3Config", "Eagle3Drafter",
                {"fc_norm": False, "norm_output": False}, ("eagle3",)),
        Variant("eagle3.1", "EAGLE-3.1", "eagle3_drafter", "Eagle3Config", "Eagle3Drafter",
                {"fc_norm": True, "norm_output": True}, ("eagle3", "eagle3.1")),
        Variant("mtp", "MTP", "mtp_drafter", "MtpConfig", "MtpDrafter", {"norm_output": False}, ("mtp",)),
        Variant("mtp-postnorm", "MTP (post-norm)", "mtp_drafter", "MtpConfig", "MtpDrafter",
                {"norm_output": True}, ("mtp",)),
    )
}
# The config switches each drafter kind has (model cards, `hf-eagle31 convert` output).
SWITCH_NAMES = {
    "eagle3_drafter": ("fc_norm", "norm_output", "norm_before_fc", "norm_before_residual"),
    "mtp_drafter": ("norm_output",),
}


def get_variant(name: str, model_type: str | None = None) -> Variant:
    """The registry entry `name` (restricted to drafters of `model_type` when given), or a one-line ValueError."""
    known = [n for n, v in VARIANTS.items() if model_type is None or v.model_type == model_type]
    if name not in known:
        raise ValueError(f"unknown variant {name!r}: use one of {sorted(known)}.")
    return VARIANTS[name]


def variant_of(config: PretrainedConfig) -> Variant:
    """
    The registry entry a drafter config matches: the variant of its `model_type` whose switches it has, else the
    first (base) variant of that `model_type` (e.g. `fc_norm` without `norm_output` counts as EAGLE-3).
    """
    model_type = getattr(config, "model_type", None)
    candidates = [v for v in VARIANTS.values() if v.model_type == model_type]
    if not candidates:
        raise ValueError(f"{model_type!r} is not a drafter model_type: use one of "
                         f"{sorted({v.model_type for v in VARIANTS.values()})}.")
    for variant in candidates:
        if all(bool(getattr(config, k, False)) == v for k, v in variant.switches.items()):
            return variant
    return candidates[0]


# A required target field the target config lacks can be given in the drafter overrides, under this name. The target's
# `num_hidden_layers` is the drafter's `target_num_hidden_layers`: the drafter's own `num_hidden_layers` is its depth.
_OVERRIDE_NAMES = {"num_hidden_layers": "target_num_hidden_layers"}


def read_target_config(target_config: Any, overrides: dict | None = None) -> dict:
    """
    Returns the target sizes a drafter needs, or raises a ValueError naming the missing field. `overrides` (the
    drafter overrides of `from_target`) fill the fields the target config does not have.
    """
    overrides = overrides or {}
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
        if value is None:
            value = overrides.get(_OVERRIDE_NAMES.get(name, name))
        if value is None and name == "num_key_value_heads":
            value = fields["num_attention_heads"]
        elif value is None and name == "head_dim":
            value = fields["hidden_size"] // fields["num_attention_heads"]
        elif value is None and default is None:
            raise ValueError(
                f"target config ({model_type or type(target_config).__name__}) has no `{name}`: pass the target's "
                f"text config (e.g. `model.config.get_text_config()`) or set `{_OVERRIDE_NAMES.get(name, name)}=` "
                "explicitly in the overrides."
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
    """
    EAGLE-3's low/mid/high taps: indices into `hidden_states` (= the *inputs* of decoder layers 2, L//2, L-3). Toy
    targets (L <= 6), where those repeat a layer, get three distinct taps spread over 1..L-1 (0..L below 4 layers).
    """
    layers = num_hidden_layers
    ids = [2, layers // 2, layers - 3]
    if len(set(ids)) == 3 and min(ids) >= 0:
        return ids
    for low, high in ((1, layers - 1), (0, layers)):
        spread = sorted({round(low + (high - low) * k / 2) for k in range(3)})
        if len(spread) == 3 and spread[0] >= 0:
            return spread
    raise ValueError(
        f"a target with {layers} decoder layer(s) has only {layers + 1} hidden states, too few for the 3 distinct ones "
        "an EAGLE-3 drafter fuses: use an MTP drafter (variant mtp) for it."
    )


def validate_target_layer_ids(
    target_layer_ids: Any, target_num_hidden_layers: int | None, expected_count: int | None = None
) -> list[int]:
    """A list of distinct non-negative ints (in range of the target's layers when known), or a one-line ValueError."""
    if isinstance(target_layer_ids, str):
        numbers = [int(n) for n in re.findall(r"-?\d+", target_layer_ids)]
        example = f"{numbers} (a list of ints)" if numbers else "a list of ints (indices into the target's `hidden_states`)"
        raise ValueError(f"target_layer_ids={target_layer_ids!r} is a string: pass {example}.")
    try:
        ids = list(target_layer_ids)
        if any(isinstance(i, (bool, str)) for i in ids):
            raise TypeError
        ids = [operator.index(i) for i in ids]
    except TypeError:
        raise ValueError(
            f"target_layer_ids={target_layer_ids!r} is not a list of ints: pass indices into the target's "
            "`hidden_states`, e.g. [2, 15, 27]."
        ) from None
    if expected_count is not None and len(ids) != expected_count:
        raise ValueError(
            f"target_layer_ids={ids} has {len(ids)} entries but this drafter fuses {expected_count} target hidden "
            f"states: give exactly {expected_count} indices into the target's `hidden_states`."
        )
    negative = [i for i in ids if i < 0]
    if negative:
        raise ValueError(
            f"target_layer_ids={ids} has negative ids {negative}: ids index the target's `hidden_states` from 0 "
            "(0 = embeddings, L = last layer output); count from the start, not from the end."
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(
            f"target_layer_ids={ids} repeats layer {repeated[0]}: pass {len(ids)} distinct indices into the target's "
            "`hidden_states` (each captured state is a different layer)."
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


def validate_draft_vocab_size(draft_vocab_size: Any, vocab_size: int) -> int:
    """An int in [1, vocab_size], or a one-line ValueError."""
    try:
        value = None if isinstance(draft_vocab_size, (bool, str)) else operator.index(draft_vocab_size)
    except TypeError:
        value = None
    if value is None or not 1 <= value <= vocab_size:
        raise ValueError(
            f"draft_vocab_size={draft_vocab_size!r} is not in [1, vocab_size={vocab_size}]: the draft vocabulary is a "
            f"non-empty subset of the target's, so choose 1 <= draft_vocab_size <= {vocab_size} (None = the whole "
            "vocabulary)."
        )
    return value


def validate_num_hidden_layers(num_hidden_layers: Any) -> int:
    """The drafter's depth: an int >= 1, or a one-line ValueError."""
    try:
        value = None if isinstance(num_hidden_layers, (bool, str)) else operator.index(num_hidden_layers)
    except TypeError:
        value = None
    if value is None or value < 1:
        raise ValueError(
            f"num_hidden_layers={num_hidden_layers!r} is not a positive int: it is the drafter's own depth (1 = the "
            "published EAGLE-3 layout); the target's layer count is `target_num_hidden_layers`."
        )
    return value


# ---------------------------------------------------------------------------------------------- config keys

# Keys transformers passes to (or writes into) configs beyond `PretrainedConfig().to_dict()`: consumed by
# `PretrainedConfig.__post_init__` / `from_dict` (legacy rope keys, dtype and attention settings), written by
# `save_pretrained` / `register_for_auto_class` / quantizers, or standard attributes of transformers 4 configs.
_TRANSFORMERS_KEYS = {
    "auto_map", "torch_dtype", "name_or_path", "attn_implementation", "experts_implementation", "output_attentions",
    "num_labels", "per_layer_config", "tie_last_hidden_states", "quantization_config", "custom_pipelines",
    "rope_theta", "rope_scaling", "partial_rotary_factor", "tie_word_embeddings", "bos_token_id", "eos_token_id",
    "pad_token_id", "sep_token_id", "decoder_start_token_id", "is_decoder", "add_cross_attention",
    "cross_attention_hidden_size", "tie_encoder_decoder", "tokenizer_class", "prefix", "task_specific_params",
    "finetuning_task", "torchscript", "pruned_heads", "use_bfloat16", "tf_legacy_loss",
}
# What hf-eagle31 records in drafter configs besides the constructor arguments (read with `getattr`).
RECORDED_KEYS = {"target_model_type", "target_name_or_path", "embed_requires_grad"}
# config.json keys of drafter formats that `hf-eagle31 convert` reads (EAGLE / SpecForge, vLLM, speculators).
FOREIGN_FORMAT_KEYS = (
    "speculators_config", "speculators_model_type", "transformer_layer_config", "eagle_aux_hidden_state_layer_ids",
    "eagle_config",
)
_VALID_KEYS = {}


def constructor_keys(config_class) -> set:
    """The keyword arguments of `config_class.__init__` and of its drafter-config bases."""
    keys = set()
    for klass in config_class.__mro__:
        if "__init__" in vars(klass) and issubclass(klass, DrafterConfig):
            keys |= {
                p.name for p in inspect.signature(klass.__init__).parameters.values()
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"
            }
    return keys


def valid_config_keys(config_class) -> set:
    """The keys a config of `config_class` accepts: its (and its bases') constructor arguments, what transformers
    passes to or saves with every config, and the metadata hf-eagle31 records."""
    if config_class not in _VALID_KEYS:
        keys = set(_TRANSFORMERS_KEYS) | RECORDED_KEYS | constructor_keys(config_class)
        keys |= set(PretrainedConfig().to_dict())
        if dataclasses.is_dataclass(PretrainedConfig):
            keys |= {f.name for f in dataclasses.fields(PretrainedConfig)}
        keys |= set(getattr(PretrainedConfig, "attribute_map", {})) | set(getattr(config_class, "attribute_map", {}))
        defaults = getattr(GenerationConfig, "_get_default_generation_params", None)  # popped by transformers
        keys |= set(defaults()) if defaults is not None else set()
        keys |= set(GenerationConfig().to_dict())
        _VALID_KEYS[config_class] = keys
    return _VALID_KEYS[config_class]


def check_config_keys(config_class, keys, source=None):
    """Raises a one-line ValueError naming every unknown key (and the closest valid one); `_private` keys pass."""
    valid = valid_config_keys(config_class)
    unknown = [k for k in keys if k not in valid and not str(k).startswith("_")]
    if not unknown:
        return
    own = sorted(constructor_keys(config_class))  # suggest the config's own settings first
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), own, n=1) or difflib.get_close_matches(str(key), sorted(valid), n=1)
        hints.append(f"`{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
    where = f"{source}: " if source else ""
    raise ValueError(
        f"{where}{config_class.__name__} has no setting {', '.join(hints)}: fix the spelling or remove "
        f"{'it' if len(unknown) == 1 else 'them'} (the settings are the arguments of {config_class.__name__})."
    )


# config.json keys that give a target's multi-token-prediction layer count (DeepSeek-V3 and the families transformers
# 5.25 drafts with natively via `generate(use_mtp=True)`: GLM-4.5 MoE, ERNIE-4.5 MoE, Qwen3-Next, Nemotron-H, ...).
MTP_LAYER_KEYS = ("num_nextn_predict_layers", "num_mtp_layers", "mtp_num_hidden_layers")


def mtp_target_message(config_dict, source):
    """The one-line answer for a target checkpoint that carries its own MTP layers, or None for any other config.
    hf-eagle31's `MtpDrafter` is a dense block with Llama attention: it cannot hold an MTP block that transformers
    builds with MLA attention or a MoE MLP (every family with `first_k_dense_replace`: transformers sets it to 0 for
    MTP blocks), on a hybrid (linear-attention) target, or that reads [hidden, embedding] instead."""
    text = config_dict.get("text_config") if isinstance(config_dict.get("text_config"), dict) else config_dict
    count = next((text[k] for k in MTP_LAYER_KEYS if text.get(k)), None)
    if not count:
        return None
    reasons = []
    if text.get("kv_lora_rank") or text.get("q_lora_rank"):
        reasons.append("its attention is MLA (multi-head latent attention), not Llama attention")
    if "first_k_dense_replace" in text or "sparse" in (text.get("mtp_mlp_layer_types") or []):
        reasons.append("its MTP block has a MoE MLP (transformers builds this family's MTP blocks with MoE)")
    layer_types = set(text.get("layer_types") or []) | set(text.get("mtp_layer_types") or [])
    if layer_types - {"full_attention", "sliding_attention"} or text.get("hybrid_override_pattern"):
        reasons.append("it is a hybrid (linear-attention / state-space) target")
    if text.get("mtp_hidden_states_first"):
        reasons.append("its MTP block reads [hidden, embedding] in that order")
    why = "; ".join(reasons) or "converting its MTP layers into an MtpDrafter is not implemented for this family"
    return (
        f"{source} is a `{text.get('model_type') or config_dict.get('model_type')}` target with {count} MTP layer(s) "
        f"of its own, not a drafter: transformers drafts with them natively (`target.generate(..., use_mtp=True)`); "
        f"hf-eagle31's MtpDrafter (a dense block with Llama attention) cannot hold them: {why}."
    )


def check_checkpoint_config(config_class, config_dict, source):
    """A config.json read for `config_class`: present, of this class's model_type, not a foreign drafter format."""
    if not config_dict:
        raise ValueError(
            f"{source} has no config.json: it is not a drafter checkpoint (or an incomplete copy); pass a directory "
            "written by `save_pretrained` (or convert an EAGLE / vLLM / speculators drafter with `hf-eagle31 convert`)."
        )
    model_type = config_dict.get("model_type")
    foreign = [k for k in FOREIGN_FORMAT_KEYS if k in config_dict]
    if not foreign and model_type in (None, config_class.model_type):
        check_config_keys(config_class, config_dict, source)
        return
    drafters = {variant.model_type: variant.drafter_class for variant in VARIANTS.values()}
    if not foreign and model_type in drafters:
        raise ValueError(
            f"{source} is an hf-eagle31 `{model_type}` checkpoint, not `{config_class.model_type}`: load it with "
            f"{drafters[model_type]}.from_pretrained (or AutoModel.from_pretrained(..., trust_remote_code=True))."
        )
    if not foreign and isinstance(model_type, str) and model_type.endswith("_drafter"):
        raise ValueError(
            f"{source} is a `{model_type}` drafter, which this hf-eagle31 release does not know (known: "
            f"{', '.join(sorted(drafters))}): upgrade hf-eagle31 to load or convert it."
        )
    if any(k.startswith("speculators") for k in foreign):
        what = "a speculators-format drafter"
    elif foreign or "draft_vocab_size" in config_dict:
        what = "an EAGLE / vLLM-format drafter"
    else:
        what = f"a `{model_type}` checkpoint, not an hf-eagle31 drafter"
    evidence = f"config.json has `{foreign[0]}`" if foreign else f"config.json model_type={model_type!r}"
    if not foreign and mtp_target_message(config_dict, source):
        raise ValueError(mtp_target_message(config_dict, source))
    if foreign or "draft_vocab_size" in config_dict:
        raise ValueError(
            f"{source} is {what} ({evidence}): load it with Eagle3Drafter.from_pretrained, which converts it in "
            f"memory, or convert it with `hf-eagle31 convert {source} DST --to hf-eagle31` and load DST."
        )
    raise ValueError(
        f"{source} is {what} ({evidence}): convert it with `hf-eagle31 convert {source} DST --to hf-eagle31` "
        "and load DST."
    )


def check_variant(variant: str, model_type: str = "eagle3_drafter") -> dict:
    """The switches of `variant` (a variant of `model_type` drafters), or a one-line ValueError."""
    return dict(get_variant(variant, model_type).switches)


class DrafterConfig(PretrainedConfig):
    """
    Fields every drafter shares (see [`Eagle3Config`] for their meaning). Subclasses set
    `num_target_hidden_states` and `default_layer_ids`, and add their own switches.
    """

    keys_to_ignore_at_inference = ["cache", "past_key_values"]
    num_target_hidden_states = 1

    @staticmethod
    def default_layer_ids(num_hidden_layers: int) -> list[int]:
        raise NotImplementedError

    def __init__(
        self,
        vocab_size: int = 32000,
        draft_vocab_size: int | None = None,
        hidden_size: int = 4096,
        intermediate_size: int = 14336,
        num_attention_heads: int = 32,
        num_key_value_heads: int | None = 8,
        head_dim: int | None = None,
        hidden_act: str = "silu",
        rms_norm_eps: float = 1e-5,
        max_position_embeddings: int = 8192,
        rope_parameters: dict | None = None,
        attention_bias: bool = False,
        target_hidden_size: int | None = None,
        target_layer_ids: list[int] | None = None,
        target_num_hidden_layers: int | None = None,
        num_hidden_layers: int = 1,
        norm_output: bool = False,
        embeddings_in_checkpoint: bool = True,
        initializer_range: float = 0.02,
        tie_word_embeddings: bool = False,
        **kwargs,
    ):
        check_config_keys(type(self), kwargs)
        self.vocab_size = vocab_size
        self.draft_vocab_size = validate_draft_vocab_size(
            draft_vocab_size if draft_vocab_size is not None else vocab_size, vocab_size
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
        self.num_hidden_layers = validate_num_hidden_layers(num_hidden_layers)
        self.norm_output = bool(norm_output)
        self.embeddings_in_checkpoint = bool(embeddings_in_checkpoint)
        self.initializer_range = initializer_range
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        # transformers accepts partial rotary for every config (and moves it into rope_parameters); the drafter rotates
        # whole heads, so a partial factor would be dropped silently and the drafter compute something else.
        factor = (self.rope_parameters or {}).get("partial_rotary_factor", getattr(self, "partial_rotary_factor", None))
        if factor not in (None, 1, 1.0):
            raise ValueError(
                f"partial_rotary_factor={factor!r}: hf-eagle31 drafters rotate whole attention heads (no partial "
                "rotary); remove it from the config (rope_parameters), or train the drafter without it."
            )

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        """transformers' reader, plus a one-line error for a missing config.json, a foreign format or unknown keys."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        check_checkpoint_config(cls, config_dict, pretrained_model_name_or_path)
        return config_dict, kwargs

    @classmethod
    def target_kwargs(
        cls, target_config: PretrainedConfig | dict, draft_vocab_size: int | None = None, overrides: dict | None = None
    ) -> dict:
        """
        The constructor arguments a drafter of this class inherits from `target_config`; `overrides` fill the fields
        the target config lacks (e.g. `intermediate_size` of a GPT-2 config). The drafter's depth (`num_hidden_layers`)
        is not inherited: the target's layer count becomes `target_num_hidden_layers`.
        """
        target = read_target_config(target_config, overrides)
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
