# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Reading EAGLE-3 drafter checkpoints in other tools' layouts: SafeAILab EAGLE-3 / SpecForge (`midlayer.*`), vLLM
(`layers.N.*` + a Llama config) and vllm-project/speculators (`transformer_layer_config`). The one copy of the reading
rules: `Eagle3Drafter.from_pretrained` converts such a checkpoint in memory with them, and `hf-eagle31 convert`
(`hf_eagle31.convert`) reads with them before writing any format. Both get the same refusals, the same meaning of
`norm_output`, and the same tensors (copied, never recomputed).

This file travels with every Hub checkpoint (remote code): it imports torch, transformers and what transformers
itself depends on (safetensors, huggingface_hub) only, and raises `ValueError`s (hf_eagle31 re-raises them as its
`InputError`). Messages name the option that fixes the input as the caller spells it (`OPTIONS`: the command line's
`--norm-output-semantics`, or `from_pretrained`'s `norm_output_semantics=`).

Captured target layers ("aux layers"): ours are indices into HF `hidden_states` (= the input of decoder layer i).
EAGLE / SpecForge store none (implied `(2, L//2, L-3)`, same convention); vLLM and speculators store
`eagle_aux_hidden_state_layer_ids` at the top level (same convention); SGLang's `eagle_config.
eagle_aux_hidden_state_layer_ids` are outputs of layer i (= ours - 1) while vLLM reads the same key as inputs: never
guessed.

Keys one consumer honours and another ignores are never resolved silently (see `read_llama_style`,
`norm_output_on_import`, `read_speculators`): `norm_before_residual: true` in a `midlayer` config (SpecForge's and
SafeAILab's `LlamaForCausalLMEagle3` ignore it, vLLM honours it), a switch set differently at the top level and in
`eagle_config`, speculators' absent `norm_before_residual` (speculators reads false, vLLM true), SGLang's old
`aux_norm_*` names beside `fc_norm.*`, a config `vocab_size` that contradicts `t2d`. `rope_parameters` beside a
disagreeing `rope_scaling` resolves as transformers resolves the same dict (speculators and vLLM build their layer
config with transformers), with a warning naming both.
"""

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field

import torch
from transformers import GenerationConfig, LlamaConfig, PretrainedConfig
from transformers.utils import cached_file, logging

from .configuration_common import SWITCH_NAMES, mtp_target_message
from .configuration_eagle3 import Eagle3Config


logger = logging.get_logger(__name__)

FORMATS = ("hf-eagle31", "eagle", "speculators", "vllm")
SWITCHES = SWITCH_NAMES["eagle3_drafter"]  # fc_norm, norm_output, norm_before_fc, norm_before_residual
# Our extension to foreign configs: the target's layer count, so that the implied default aux layers can be recovered.
TARGET_LAYERS_KEY = "target_num_hidden_layers"
OPTIONAL_KEYS = ("embed_tokens.weight", "d2t", "t2d")
# What `norm_output: true` means: the next chain step is fed the final-norm output (EAGLE-3.1; vLLM, SGLang,
# speculators, SpecForge from PR #879) or the pre-norm state while only lm_head reads the normalised one (SpecForge
# before PR #879, = norm_output=False here).
NORM_OUTPUT_SEMANTICS = ("post-norm-feed", "pre-norm-feed")
# Our extension to `midlayer` configs, written by `--to eagle` next to `norm_output: true`: which meaning it has.
SEMANTICS_KEY = "norm_output_semantics"
CONSUMERS_POST = "vLLM, SGLang, speculators and SpecForge from PR #879 (merged 2026-09-15)"
CONSUMERS_PRE = "SpecForge before PR #879"
EAGLE_ARCHITECTURE = "LlamaForCausalLMEagle3"  # SafeAILab EAGLE-3, SpecForge, vLLM's EAGLE-style configs
LEGACY_NAMES = {
    "midlayer.": "layers.0.",
    "aux_norm_low.": "fc_norm.0.",
    "aux_norm_mid.": "fc_norm.1.",
    "aux_norm_high.": "fc_norm.2.",
}  # SGLang's older names for fc_norm

# How each caller spells the options that fix an input (messages name them).
OPTIONS = {
    "cli": {
        "norm_output_semantics": "--norm-output-semantics {}",
        "target": "--target (its config is read)",
        "target_layer_ids": "--target-layer-ids",
        "source_format": "--from {}",
        "ignore": "--ignore-config-key {}",
    },
    "python": {
        "norm_output_semantics": "norm_output_semantics={!r}",
        "target": "target_config= (the target's config)",
        "target_layer_ids": "target_layer_ids=[...]",
        "source_format": "source_format={!r}",
        "ignore": "ignore_config_keys=[{!r}]",
    },
}


def option(options: str, name: str, value=None) -> str:
    """`name` as the caller (`options`: "cli" or "python") spells it, with `value` filled in."""
    return OPTIONS[options][name].format(value)


@dataclass
class DrafterCheckpoint:
    """
    A drafter in memory, independent of any on-disk format.

    config: the [`Eagle3Config`] (target_layer_ids in our convention: indices into HF `hidden_states`).
    state_dict: tensors under our key names (`layers.0.*`, `fc.weight`, ...); `embed_tokens.weight` only when the
        checkpoint really has the target's embeddings.
    source_format: the format it was read from.
    verifier: `{"name_or_path", "architectures"}` of the target when known (speculators stores it).
    speculative_tokens: default draft length recorded by speculators checkpoints.
    """

    config: Eagle3Config
    state_dict: dict
    source_format: str
    verifier: dict = field(default_factory=dict)
    speculative_tokens: int | None = None

    @property
    def has_embeddings(self):
        return "embed_tokens.weight" in self.state_dict


# ---------------------------------------------------------------------------------------------------------------------
# files: a local directory or a Hub id, resolved as transformers resolves them
# ---------------------------------------------------------------------------------------------------------------------

# `from_pretrained` arguments that say where the files are (transformers' `cached_file` takes them).
HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")


def _resolve(path_or_id, filename, hub_kwargs):
    return cached_file(
        str(path_or_id),
        filename,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub_kwargs,
    )


def check_source(path_or_id) -> None:
    """A string that names a local path must be a directory (transformers would take a missing one for a Hub id)."""
    text = os.path.expanduser(str(path_or_id))
    if os.path.isdir(text):
        return
    if os.path.exists(text) or str(path_or_id).startswith((".", "/", "~")):
        raise ValueError(f"{path_or_id} is not a checkpoint directory: pass a directory with config.json and weights.")


def read_config_file(path_or_id, hub_kwargs=None) -> dict:
    """The raw config.json of a checkpoint directory or Hub id."""
    check_source(path_or_id)
    resolved = _resolve(os.path.expanduser(str(path_or_id)), "config.json", hub_kwargs or {})
    if resolved is None:
        raise ValueError(f"{path_or_id} has no config.json: point at a drafter checkpoint directory (or Hub id).")
    with open(resolved, encoding="utf-8") as f:
        return json.load(f)


def _load_file(path):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file  # a transformers dependency

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def read_weights(path_or_id, hub_kwargs=None) -> dict:
    """All tensors of a checkpoint: safetensors (single or sharded) or pytorch_model.bin (single or sharded)."""
    source = os.path.expanduser(str(path_or_id))
    hub_kwargs = hub_kwargs or {}
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = _resolve(source, index_name, hub_kwargs)
        if index is not None:
            with open(index, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            weights = {}
            for shard in shards:
                resolved = _resolve(source, shard, hub_kwargs)
                if resolved is None:
                    raise ValueError(f"{path_or_id}: {index_name} names {shard}, which is missing: copy it again.")
                weights.update(_load_file(resolved))
            return weights
    for name in ("model.safetensors", "pytorch_model.bin"):
        resolved = _resolve(source, name, hub_kwargs)
        if resolved is not None:
            return _load_file(resolved)
    raise ValueError(
        f"{path_or_id} has no model.safetensors or pytorch_model.bin (nor a sharded index): point at a drafter "
        "checkpoint directory."
    )


# ---------------------------------------------------------------------------------------------------------------------
# what a foreign config.json may hold
# ---------------------------------------------------------------------------------------------------------------------
# A reader never drops a key it does not understand: such a key can be a newer variant's switch, or an option of
# another tool, that makes the drafter compute something else, and a conversion that ignores it makes a different
# model under the same weights. So each config a reader takes (top level, `eagle_config`, speculators'
# `transformer_layer_config`) may hold only
#   1. keys the reader reads (sizes, rope, switches, aux layers, our extensions);
#   2. keys known not to change the drafter's function: transformers' metadata of every config (`PretrainedConfig`'s
#      own fields, the generation defaults transformers 4 wrote into model configs) and Llama's training-only or
#      numerically-equivalent options (`LLAMA_NO_EFFECT`);
#   3. options whose default our drafter is (`DEFAULT_ONLY`), refused when set otherwise;
# and anything else is refused in one line naming the key (`ignore_config_keys` / --ignore-config-key passes a key the
# user knows to be harmless, read as if absent).

# Read by `config_from_llama_dict` / `rope_from_dict`.
LLAMA_READ = {
    "vocab_size", "draft_vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
    "head_dim", "hidden_act", "rms_norm_eps", "max_position_embeddings", "rope_parameters", "rope_theta",
    "rope_scaling", "attention_bias", "bos_token_id", "eos_token_id", "pad_token_id", "num_hidden_layers",
}  # fmt: skip
# Llama options that do not change what the drafter computes at inference (training-only, the same math split
# differently, its lm_head is its own weight either way), config metadata, and fields of the target's family that
# SpecForge configs copy from their target and that no EAGLE-3 reader of a Llama layer reads: Qwen's window sizes (they
# act only with `use_sliding_window`, refused when on) and Qwen-MoE's `decoder_sparse_step` (which layers are MoE:
# the drafter's layer is a dense Llama layer in SpecForge, SGLang and vLLM alike).
LLAMA_NO_EFFECT = {
    "initializer_range", "use_cache", "attention_dropout", "pretraining_tp", "tie_word_embeddings", "architectures",
    "model_type", "torch_dtype", "dtype", "transformers_version", "auto_map", "max_window_layers", "sliding_window",
    "decoder_sparse_step",
}  # fmt: skip
# Options our drafter has only at their default (value -> whether it is the default).
DEFAULT_ONLY = {
    "mlp_bias": lambda v: not v,
    "model_type": lambda v: v in (None, "llama"),
    "use_sliding_window": lambda v: not v,
    "use_aux_hidden_state": lambda v: v is None or bool(v),  # vLLM's `eagle_config`: EAGLE-3 reads the aux states
}
# Keys a drafter config of any foreign format may carry beside its Llama fields.
DRAFTER_READ = {"draft_vocab_size", "target_hidden_size", "eagle_aux_hidden_state_layer_ids", *SWITCHES}
# Keys whose absence would leave the reader without the drafter's shape or layout: never ignorable.
NOT_IGNORABLE = {
    "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
    "draft_vocab_size", "target_hidden_size", "num_hidden_layers", "transformer_layer_config",
    "speculators_model_type", "architectures",
}  # fmt: skip


def transformers_metadata_keys() -> set:
    """What transformers writes into any model's config.json: `PretrainedConfig`'s own fields and the generation
    defaults that transformers 4 saved with model configs (sampling defaults, not the drafter's function)."""
    keys = set(PretrainedConfig().to_dict()) | set(GenerationConfig().to_dict())
    if dataclasses.is_dataclass(PretrainedConfig):
        keys |= {f.name for f in dataclasses.fields(PretrainedConfig)}
    # transformers 4's class attribute, serialized by speculators' early exporters (NVIDIA ModelOpt's vLLM template)
    return keys | {"has_no_defaults_at_init"}


def check_config_keys(config: dict, known: set, where: str, fmt: str, options: str = "cli") -> None:
    """Refuses, in one line, a key of `config` the reader does not know (see above) or a `DEFAULT_ONLY` option set
    otherwise. `known`: the keys the reader reads or knows to be harmless (they win over `DEFAULT_ONLY`); `where`
    names the config in messages."""
    generic = transformers_metadata_keys()
    for key, value in config.items():
        key = str(key)
        if key in DEFAULT_ONLY and key not in known:
            if not DEFAULT_ONLY[key](value):
                raise ValueError(
                    f"{where} sets {key}={value!r}, which the EAGLE-3 drafter does not implement (converting would "
                    "drop it and make a different drafter): train or export it without that option."
                )
            continue
        if key.startswith("_") or key in known or key in generic or key in DEFAULT_ONLY:
            continue
        raise ValueError(
            f"{where} has `{key}`, which the hf-eagle31 {fmt} reader does not know (a newer variant's switch, or "
            f"another tool's option): converting would silently drop it; use an hf-eagle31 release that reads it, or "
            f"pass {option(options, 'ignore', key)} (or delete it from config.json) if you know it does not change "
            "the model."
        )


def without_ignored(config: dict, ignored, where: str) -> dict:
    """`config` (and its nested `eagle_config` / `transformer_layer_config`) without the keys the user passed as
    harmless, read as if absent; a key that is nowhere in it, or that the drafter's shape needs, is refused."""
    ignored = set(ignored or ())
    if not ignored:
        return config
    protected = sorted(ignored & NOT_IGNORABLE)
    if protected:
        raise ValueError(f"cannot ignore `{protected[0]}`: the drafter's shape or layout is read from it.")
    found = set()
    result = {}
    for key, value in config.items():
        if key in ignored:
            found.add(key)
            continue
        if key in ("eagle_config", "transformer_layer_config") and isinstance(value, dict):
            found |= ignored & set(value)
            value = {k: v for k, v in value.items() if k not in ignored}
        result[key] = value
    missing = sorted(ignored - found)
    if missing:
        raise ValueError(f"{where} has no `{missing[0]}` to ignore: pass only keys the config holds.")
    logger.warning("%s: ignoring %s as asked (read as if absent).", where, ", ".join(f"`{k}`" for k in sorted(found)))
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Llama-style configs (EAGLE, SpecForge, vLLM configs and speculators' transformer_layer_config)
# ---------------------------------------------------------------------------------------------------------------------

_ROPE_KEYS = ("rope_parameters", "rope_scaling", "rope_theta", "max_position_embeddings")


def _transformers_rope(d: dict) -> dict:
    # LlamaConfig's own resolution of these keys (transformers 5.23 - 5.25: a truthy `rope_scaling` replaces
    # `rope_parameters`, then the top-level `rope_theta` fills a missing theta): what speculators (`LlamaConfig(**d)`)
    # and vLLM (its HF config) run.
    given = {k: copy.deepcopy(d[k]) for k in _ROPE_KEYS if d.get(k) is not None}
    params = dict(LlamaConfig(**given).rope_parameters or {})
    if "rope_type" in params:
        params.pop("type", None)  # transformers keeps the legacy alias beside `rope_type`, which wins
    params["rope_theta"] = float(params.get("rope_theta", 10000.0))
    return params


def rope_from_dict(d: dict, where: str = "config.json") -> dict:
    """The drafter's `rope_parameters` from a Llama-style dict, as transformers reads the same dict (EAGLE configs omit
    every rope key: the default rope with theta 1e4). A `rope_parameters` beside a `rope_scaling` that disagrees with
    it is read the same way, with a warning naming both."""
    if not any(d.get(k) is not None for k in ("rope_parameters", "rope_scaling", "rope_theta")):
        return {"rope_type": "default", "rope_theta": 10000.0}
    params = _transformers_rope(d)
    if d.get("rope_parameters") and d.get("rope_scaling"):
        alone = _transformers_rope({k: v for k, v in d.items() if k != "rope_scaling"})
        if alone != params:
            logger.warning(
                "%s holds rope_parameters=%s and rope_scaling=%s, which disagree: read as transformers reads them "
                "(and speculators and vLLM through it): rope_scaling wins, %s.",
                where,
                d["rope_parameters"],
                d["rope_scaling"],
                params,
            )
    return params


def resolve_layer_ids(config: dict, fmt: str, num_layers, override, options: str = "cli") -> list:
    if override is not None:
        return [int(i) for i in override]
    ids = config.get("eagle_aux_hidden_state_layer_ids")
    nested = (config.get("eagle_config") or {}).get("eagle_aux_hidden_state_layer_ids")
    if ids and nested and list(ids) != list(nested):
        raise ValueError(
            f"config.json has eagle_aux_hidden_state_layer_ids={ids} at the top level and {nested} in eagle_config: "
            f"vLLM and SGLang read different ones; pass {option(options, 'target_layer_ids')} as indices into the "
            "target's HF `hidden_states` (= input of layer i)."
        )
    if ids:
        return [int(i) for i in ids]
    if nested:
        raise ValueError(
            f"config.json has only eagle_config.eagle_aux_hidden_state_layer_ids={nested}, which vLLM reads as inputs "
            f"of layer i and SGLang as outputs of layer i: pass {option(options, 'target_layer_ids')} as indices into "
            "the target's HF `hidden_states` (= input of layer i; SGLang's ids + 1)."
        )
    if num_layers is None:
        raise ValueError(
            f"this {fmt} checkpoint does not say which target layers it reads (they are implied by the target's layer "
            f"count): pass {option(options, 'target')} or {option(options, 'target_layer_ids')}."
        )
    return [2, num_layers // 2, num_layers - 3]


def config_from_llama_dict(d: dict, *, vocab_size, layer_ids, num_layers, rope=None, extra=None) -> Eagle3Config:
    hidden = d["hidden_size"]
    heads = d["num_attention_heads"]
    kwargs = dict(
        vocab_size=vocab_size,
        draft_vocab_size=d.get("draft_vocab_size") or vocab_size,
        hidden_size=hidden,
        intermediate_size=d["intermediate_size"],
        num_attention_heads=heads,
        num_key_value_heads=d.get("num_key_value_heads") or heads,
        head_dim=d.get("head_dim") or hidden // heads,
        hidden_act=d.get("hidden_act", "silu"),
        rms_norm_eps=d.get("rms_norm_eps", 1e-6),
        max_position_embeddings=d.get("max_position_embeddings", 2048),
        rope_parameters=rope if rope is not None else rope_from_dict(d),
        attention_bias=bool(d.get("attention_bias", False)),
        bos_token_id=d.get("bos_token_id"),
        eos_token_id=d.get("eos_token_id"),
        pad_token_id=d.get("pad_token_id"),
        target_num_hidden_layers=num_layers,
        target_layer_ids=layer_ids,
        num_hidden_layers=d.get("num_hidden_layers", 1),  # the drafter's depth (foreign configs are Llama dicts)
    )
    kwargs.update(extra or {})
    return Eagle3Config(**kwargs)


def text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def target_layers(config: dict, target_config) -> int | None:
    if config.get(TARGET_LAYERS_KEY) is not None:
        return int(config[TARGET_LAYERS_KEY])
    if target_config is not None:
        return text_config(target_config).num_hidden_layers
    return None


def _switches(config: dict, where: str) -> dict:
    """Each switch from the top level or `eagle_config` (vLLM reads both places); set differently in the two, the
    readers disagree on which counts: refused."""
    nested = config.get("eagle_config") or {}
    values = {}
    for name in SWITCHES:
        top, inner = config.get(name), nested.get(name)
        if top is not None and inner is not None and bool(top) != bool(inner):
            raise ValueError(
                f"{where} sets {name}={top} at the top level and {name}={inner} in eagle_config: readers disagree on "
                "which one counts; keep one of them (the value the drafter was trained with)."
            )
        values[name] = bool(top if top is not None else inner or False)
    return values


def read_llama_style(
    where, config: dict, state: dict, fmt: str, target_config, layer_ids, options: str = "cli"
) -> DrafterCheckpoint:
    """The config of an EAGLE / SpecForge (`midlayer`, renamed by the caller) or vLLM (`layers.N`) checkpoint: a Llama
    config + the switches (top level, or inside `eagle_config` as vLLM also accepts); keys it does not know refused.
    The layer class is `architectures`' (LlamaForCausalLMEagle3 in every reader), so `model_type` is metadata here."""
    extensions = {TARGET_LAYERS_KEY, "eagle_config", "model_type"} | ({SEMANTICS_KEY} if fmt == "eagle" else set())
    check_config_keys(config, LLAMA_READ | LLAMA_NO_EFFECT | DRAFTER_READ | extensions, str(where), fmt, options)
    if isinstance(config.get("eagle_config"), dict):
        nested = {"eagle_aux_hidden_state_layer_ids", *SWITCHES}
        check_config_keys(config["eagle_config"], nested, f"{where} eagle_config", fmt, options)
    # vocab: `t2d` has the target's size; config `vocab_size` is the target's too in every published EAGLE-3 config,
    # and SpecForge, SGLang and vLLM size the embeddings and the scattered logits by it.
    vocab_size = config["vocab_size"]
    if "t2d" in state and state["t2d"].shape[0] != vocab_size:
        raise ValueError(
            f"{where} says vocab_size={vocab_size} but t2d maps {state['t2d'].shape[0]} target tokens: readers size "
            "the vocabulary by the config, the mapping says otherwise; fix vocab_size to the target's vocabulary."
        )
    num_layers = target_layers(config, target_config)
    ids = resolve_layer_ids(config, fmt, num_layers, layer_ids, options)
    switches = _switches(config, str(where))
    target_hidden = config.get("target_hidden_size") or config["hidden_size"]
    cfg = config_from_llama_dict(
        config,
        vocab_size=vocab_size,
        layer_ids=ids,
        num_layers=num_layers,
        rope=rope_from_dict(config, str(where)),
        extra=dict(target_hidden_size=target_hidden, **switches),
    )
    return DrafterCheckpoint(cfg, state, fmt)


# ---------------------------------------------------------------------------------------------------------------------
# the formats
# ---------------------------------------------------------------------------------------------------------------------


def detect_format(config: dict, weight_keys, where, options: str = "cli") -> str:
    """One of `FORMATS` for a checkpoint, from its config.json (and weight names: EAGLE vs vLLM)."""
    if "speculators_model_type" in config:
        return "speculators"
    if config.get("model_type") in ("eagle3_drafter", "mtp_drafter"):
        return "hf-eagle31"
    architectures = config.get("architectures") or []
    if any("Eagle3" in a for a in architectures) or "draft_vocab_size" in config:
        return "eagle" if any(k.startswith("midlayer.") for k in weight_keys) else "vllm"
    if mtp_target_message(config, where):
        raise ValueError(mtp_target_message(config, where))
    raise ValueError(
        f"cannot tell the format of {where}: config.json has architectures={architectures} and no "
        "`speculators_model_type`; pass the format explicitly "
        f"({option(options, 'source_format', 'eagle|speculators|vllm|hf-eagle31')})."
    )


def is_foreign_config(config: dict) -> bool:
    """Whether a config.json is an EAGLE-3 drafter in another tool's layout (what `detect_format` reads)."""
    model_type = config.get("model_type")
    if model_type in ("eagle3_drafter", "mtp_drafter"):
        return False
    if isinstance(model_type, str) and model_type.endswith("_drafter") and "speculators_model_type" not in config:
        return False  # an hf-eagle31 drafter of a newer release (check_checkpoint_config names it), not a layout
    architectures = config.get("architectures") or []
    return (
        "speculators_model_type" in config
        or any("Eagle3" in str(a) for a in architectures)
        or "draft_vocab_size" in config
    )


def _check_semantics_name(value, where):
    if value is not None and value not in NORM_OUTPUT_SEMANTICS:
        raise ValueError(f"{where} {value!r} is not a norm_output meaning: use one of {list(NORM_OUTPUT_SEMANTICS)}.")


def norm_output_on_import(config: dict, semantics=None, options: str = "cli") -> bool:
    """
    Our `norm_output` for a `midlayer` config.json. SpecForge's two eras (before / from its PR #879) write the same
    config and keys for two meanings of `norm_output: true`, so `semantics` is needed when the config says it and does
    not record its meaning (`SEMANTICS_KEY`, written by our `--to eagle`); a recorded meaning that contradicts it
    refuses. pre-norm-feed (SpecForge before #879: norm before lm_head only) is our norm_output=False.
    """
    spelled = option(options, "norm_output_semantics", "").strip(" ='\"")
    _check_semantics_name(semantics, spelled)
    flag = bool(config.get("norm_output", (config.get("eagle_config") or {}).get("norm_output", False)))
    if not flag:
        return False
    recorded = config.get(SEMANTICS_KEY)
    _check_semantics_name(recorded, f"config.json {SEMANTICS_KEY}")
    if recorded is not None and semantics is not None and recorded != semantics:
        raise ValueError(
            f"config.json records {SEMANTICS_KEY}={recorded!r} but {option(options, 'norm_output_semantics', semantics)}"
            " was passed: drop it, or fix config.json if the record is wrong."
        )
    semantics = recorded or semantics
    if semantics is None:
        raise ValueError(
            "config.json says norm_output: true, which SpecForge before PR #879 wrote for pre-norm-feed (norm before "
            "lm_head only) and vLLM / SGLang / speculators / SpecForge from #879 mean as post-norm-feed, and nothing "
            f"in this checkpoint says which: pass {option(options, 'norm_output_semantics', 'post-norm-feed')} "
            f"(trained with SpecForge from #879, merged 2026-09-15) or {'pre-norm-feed' if options == 'cli' else repr('pre-norm-feed')} "
            "(trained before it)."
        )
    source = "recorded in config.json" if recorded else f"from {spelled}"
    if semantics == "pre-norm-feed":
        logger.warning(
            "norm_output: true read as pre-norm-feed (%s; SpecForge before PR #879): the next chain step gets the "
            "pre-norm state and only lm_head the normalised one, which is norm_output=False here (fc_norm kept as "
            "it is).",
            source,
        )
        return False
    logger.info(
        "norm_output: true read as post-norm-feed (%s): the next chain step gets the post-norm state, "
        "norm_output=True here.",
        source,
    )
    return True


def _renamed(weights: dict, names: dict, where) -> dict:
    state = {}
    for key, value in weights.items():
        for old, new in names.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        if key in state:
            raise ValueError(
                f"{where} holds {key} under two names ({', '.join(o for o, n in names.items() if key.startswith(n))}): "
                "readers keep different ones; delete the copy the drafter was not trained with."
            )
        state[key] = value
    return state


def read_eagle(where, config, weights, target_config, layer_ids, norm_output_semantics=None, options="cli"):
    """SafeAILab EAGLE-3 / SpecForge (`midlayer.*`, one decoder layer; SGLang's old `aux_norm_*` names)."""
    if config.get("num_hidden_layers", 1) != 1:
        raise ValueError(
            f"{where}: the EAGLE format holds one decoder layer (`midlayer.*`); this drafter has "
            f"{config['num_hidden_layers']} (config.json num_hidden_layers): convert its vLLM or speculators export "
            "(`layers.N.*`) instead."
        )
    residual = config.get("norm_before_residual", (config.get("eagle_config") or {}).get("norm_before_residual"))
    if residual:
        # No weight says which reading the producer trained with (unlike fc_norm / norm_before_fc, whose norms are
        # weights): the two readings are different drafters with the same tensors.
        raise ValueError(
            f"{where} sets norm_before_residual: true in a `midlayer` checkpoint: SpecForge's and SafeAILab's "
            "LlamaForCausalLMEagle3 ignore it (residual = the hidden input), vLLM honours it (residual = "
            f"hidden_norm(input)); pass {option(options, 'ignore', 'norm_before_residual')} to read it as SpecForge "
            f"and SafeAILab run it, or {option(options, 'source_format', 'vllm')} to read it as vLLM runs it."
        )
    state = _renamed(weights, LEGACY_NAMES, where)
    ckpt = read_llama_style(where, config, state, "eagle", target_config, layer_ids, options)
    ckpt.config.norm_output = norm_output_on_import(config, norm_output_semantics, options)
    return ckpt


def read_vllm(where, config, weights, target_config, layer_ids, norm_output_semantics=None, options="cli"):
    """vLLM's reading: a Llama config with every switch (top level or `eagle_config`), `layers.N.*` weights (vLLM
    renames `midlayer.` to `layers.0.` itself, so a `midlayer` checkpoint read `--from vllm` is read as vLLM runs it);
    `norm_output: true` means post-norm-feed."""
    if norm_output_semantics == "pre-norm-feed" and config.get("norm_output"):
        raise ValueError(
            f"{where} is read as vLLM reads it, where norm_output: true means post-norm-feed for every reader: drop "
            f"{option(options, 'norm_output_semantics', 'pre-norm-feed')} (it applies to SpecForge `midlayer` "
            "exports read as SpecForge runs them)."
        )
    state = _renamed(weights, {"midlayer.": "layers.0."}, where)
    return read_llama_style(where, config, state, "vllm", target_config, layer_ids, options)


SPECULATORS_TOP_LEVEL_KEYS = DRAFTER_READ | {
    TARGET_LAYERS_KEY, "speculators_model_type", "speculators_version", "speculators_config",
    "transformer_layer_config", "embed_requires_grad", "architectures", "auto_map", "model_type", "dtype",
    "torch_dtype", "tie_word_embeddings", "transformers_version",
}  # fmt: skip


def read_speculators(where, config, weights, target_config, layer_ids, norm_output_semantics=None, options="cli"):
    """vllm-project/speculators (0.9.0's `save_pretrained`): the Llama layer config in `transformer_layer_config`,
    switches and aux layers at the top level, no `d2t` / `t2d` for a full draft vocabulary."""
    algorithm = config.get("speculators_model_type")
    if algorithm != "eagle3":
        raise ValueError(
            f"{where} is a speculators `{algorithm}` checkpoint: only `eagle3` converts to an EAGLE-3 drafter."
        )
    if norm_output_semantics == "pre-norm-feed" and config.get("norm_output"):
        raise ValueError(
            f"{where} is a speculators checkpoint, whose norm_output: true means post-norm-feed for every reader: "
            f"drop {option(options, 'norm_output_semantics', 'pre-norm-feed')} (it applies to SpecForge `midlayer` "
            "exports)."
        )
    layer = dict(config["transformer_layer_config"])
    if layer.get("model_type", "llama") != "llama":
        raise ValueError(
            f"{where} has `{layer.get('model_type')}` draft layers: only the Llama-style layers of EAGLE-3 (no "
            "q/k norms) convert; retrain or export with model_type llama."
        )
    if layer.get("mlp_bias"):
        raise ValueError(f"{where} uses mlp_bias=True, which the EAGLE-3 drafter does not have.")
    check_config_keys(config, SPECULATORS_TOP_LEVEL_KEYS, str(where), "speculators", options)
    check_config_keys(layer, LLAMA_READ | LLAMA_NO_EFFECT, f"{where} transformer_layer_config", "speculators", options)
    if "norm_before_residual" not in config:
        raise ValueError(
            f"{where} has no norm_before_residual: speculators reads its absence as false and vLLM as true (two "
            "different drafters); add the value it was trained with to config.json (speculators writes it always)."
        )
    draft_vocab = config.get("draft_vocab_size")
    inner = layer.get("draft_vocab_size")
    if draft_vocab and inner and draft_vocab != inner:
        raise ValueError(
            f"{where} has draft_vocab_size={draft_vocab} and transformer_layer_config.draft_vocab_size={inner}: keep "
            "the one that matches lm_head.weight."
        )
    verifier = dict((config.get("speculators_config") or {}).get("verifier") or {})
    proposals = (config.get("speculators_config") or {}).get("proposal_methods") or [{}]
    num_layers = target_layers(config, target_config)
    ids = resolve_layer_ids(config, "speculators", num_layers, layer_ids, options)
    vocab_size = layer["vocab_size"]
    draft_vocab = draft_vocab or inner or vocab_size
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
        rope=rope_from_dict(layer, f"{where} transformer_layer_config"),
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


READERS = {"eagle": read_eagle, "speculators": read_speculators, "vllm": read_vllm}


# ---------------------------------------------------------------------------------------------------------------------
# checks every read runs
# ---------------------------------------------------------------------------------------------------------------------


def expected_shapes(config: Eagle3Config, drafter_class) -> dict:
    with torch.device("meta"):
        model = drafter_class(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_state_dict(ckpt: DrafterCheckpoint, drafter_class):
    """Every tensor must have a place in the drafter and every place but the optional ones a tensor: no silent drops."""
    expected = expected_shapes(ckpt.config, drafter_class)
    unexpected = sorted(set(ckpt.state_dict) - set(expected))
    missing = sorted(set(expected) - set(ckpt.state_dict) - set(OPTIONAL_KEYS))
    if unexpected or missing:
        raise ValueError(
            f"the {ckpt.source_format} checkpoint does not match an EAGLE-3 drafter with its config "
            f"(num_hidden_layers={ckpt.config.num_hidden_layers}, fc_norm={ckpt.config.fc_norm}, "
            f"norm_before_fc={ckpt.config.norm_before_fc}): unexpected keys "
            f"{unexpected[:8]}, missing keys {missing[:8]}; fix its config.json switches to match its weights."
        )
    for key, tensor in ckpt.state_dict.items():
        if tuple(tensor.shape) != expected[key]:
            raise ValueError(
                f"{key} has shape {tuple(tensor.shape)} but the config implies {expected[key]}: the config.json sizes "
                "(hidden_size, target_hidden_size, draft_vocab_size, heads) do not match the weights."
            )
    if ("d2t" in ckpt.state_dict) != ("t2d" in ckpt.state_dict):
        raise ValueError("the checkpoint has only one of d2t / t2d: both are needed to map the draft vocabulary.")
    if "d2t" not in ckpt.state_dict and ckpt.config.draft_vocab_size != ckpt.config.vocab_size:
        raise ValueError(
            f"draft_vocab_size={ckpt.config.draft_vocab_size} < vocab_size={ckpt.config.vocab_size} but the "
            "checkpoint has no d2t/t2d mapping: it is incomplete; re-export it with its vocabulary mapping."
        )


def with_identity_vocab_map(ckpt: DrafterCheckpoint) -> DrafterCheckpoint:
    """A full draft vocabulary needs no mapping on disk (speculators writes none): give it the identity d2t / t2d
    our drafters carry. Checkpoints that have a mapping are returned unchanged."""
    if "d2t" in ckpt.state_dict:
        return ckpt
    state = dict(ckpt.state_dict)
    state["d2t"] = torch.zeros(ckpt.config.draft_vocab_size, dtype=torch.long)
    state["t2d"] = torch.ones(ckpt.config.vocab_size, dtype=torch.bool)
    return dataclasses.replace(ckpt, state_dict=state)


def check_layer_ids(cfg: Eagle3Config, options: str = "cli"):
    """Aux layers a reader would accept: distinct, and valid for the config (in range of the target's layers when
    known) — checked here, so that no checkpoint is written that fails only when read back."""
    ids = list(cfg.target_layer_ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"target_layer_ids={ids} repeats a layer: pass distinct ids ({option(options, 'target_layer_ids')}).")
    type(cfg).from_dict(cfg.to_dict())  # the config's own checks, as on load


def check_against_target(cfg: Eagle3Config, target_config, options: str = "cli"):
    text = text_config(target_config)
    for what, mine, theirs in (
        ("vocab size", cfg.vocab_size, text.vocab_size),
        ("hidden size", cfg.target_hidden_size, text.hidden_size),
    ):
        if mine != theirs:
            raise ValueError(
                f"the drafter expects a target {what} of {mine} but the target given has {theirs}: pass the target "
                "this drafter was trained for."
            )
    if max(cfg.target_layer_ids) > text.num_hidden_layers:
        raise ValueError(
            f"target_layer_ids={cfg.target_layer_ids} reach past the target's {text.num_hidden_layers} layers: pass "
            f"the right target or {option(options, 'target_layer_ids')}."
        )


def record_target_layer_count(cfg: Eagle3Config, target_config):
    """Fills in `cfg.target_num_hidden_layers` (in place) from the target when the checkpoint did not record it;
    exports write it, so the implied EAGLE aux layers can be recovered on import."""
    if cfg.target_num_hidden_layers is None:
        cfg.target_num_hidden_layers = text_config(target_config).num_hidden_layers


def read_foreign(
    where,
    config: dict,
    weights: dict,
    fmt: str,
    drafter_class,
    target_config=None,
    target_layer_ids=None,
    norm_output_semantics=None,
    ignore_config_keys=None,
    options: str = "cli",
) -> DrafterCheckpoint:
    """
    A foreign checkpoint (`fmt` in eagle / speculators / vllm) already in memory -> a checked [`DrafterCheckpoint`]
    under our key names (`drafter_class` gives the expected shapes: `Eagle3Drafter`).

    target_config: the target's config (gives the layer count when the checkpoint implies its aux layers, and is
        checked against the drafter's sizes). target_layer_ids: overrides the aux layers (indices into the target's
        HF `hidden_states`). norm_output_semantics: what `norm_output: true` means in a `midlayer` checkpoint that does
        not record it (`NORM_OUTPUT_SEMANTICS`). ignore_config_keys: config keys the user knows to be harmless (read as
        if absent).
    """
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}: use one of {list(FORMATS)}.")
    if not is_foreign_config(config) and mtp_target_message(config, where):  # a target, whatever format was named
        raise ValueError(mtp_target_message(config, where))
    config = without_ignored(config, ignore_config_keys, f"{where}")
    ckpt = READERS[fmt](where, config, weights, target_config, target_layer_ids, norm_output_semantics, options)
    return finish(ckpt, drafter_class, target_config, options)


def finish(ckpt: DrafterCheckpoint, drafter_class, target_config=None, options: str = "cli") -> DrafterCheckpoint:
    """The checks every read runs (any format): tensors against the config, identity vocabulary map where none is
    stored, aux layers, and the target's sizes when it is known."""
    check_state_dict(ckpt, drafter_class)
    ckpt = with_identity_vocab_map(ckpt)
    check_layer_ids(ckpt.config, options)
    if target_config is not None:
        check_against_target(ckpt.config, target_config, options)
        record_target_layer_count(ckpt.config, target_config)
    return ckpt


def load_checkpoint(
    path_or_id,
    drafter_class,
    source_format=None,
    target_config=None,
    target_layer_ids=None,
    norm_output_semantics=None,
    ignore_config_keys=None,
    options: str = "python",
    hub_kwargs=None,
) -> DrafterCheckpoint:
    """Reads a foreign checkpoint directory or Hub id (files resolved as transformers resolves them) into a checked
    [`DrafterCheckpoint`]; `source_format` overrides the detected format."""
    if norm_output_semantics is not None and norm_output_semantics not in NORM_OUTPUT_SEMANTICS:
        raise ValueError(
            f"unknown norm_output meaning {norm_output_semantics!r}: use one of {list(NORM_OUTPUT_SEMANTICS)}."
        )
    config = read_config_file(path_or_id, hub_kwargs)
    weights = read_weights(path_or_id, hub_kwargs)
    fmt = source_format or detect_format(config, weights.keys(), path_or_id, options)
    where = os.path.join(str(path_or_id), (hub_kwargs or {}).get("subfolder") or "", "config.json")
    return read_foreign(
        where, config, weights, fmt, drafter_class, target_config, target_layer_ids, norm_output_semantics,
        ignore_config_keys, options,
    )


# ---------------------------------------------------------------------------------------------------------------------
# into a drafter
# ---------------------------------------------------------------------------------------------------------------------


def drafter_from_checkpoint(ckpt: DrafterCheckpoint, drafter_class, dtype="auto"):
    """
    A drafter holding exactly the checkpoint's tensors, with a config that records whether embeddings were stored and
    the verifier (as our layout saves them). `dtype="keep"`: every tensor keeps its own dtype (what a conversion
    writes). `"auto"`: what `from_pretrained` of a conversion into our layout loads, all floating-point tensors in the
    dtype `save_pretrained` records (the first floating-point parameter's; transformers loads with `dtype="auto"`). A
    torch dtype: that one. Embeddings absent from the checkpoint are zeros marked not ready (the target's are loaded at
    generate time).
    """
    config = copy.deepcopy(ckpt.config)
    config.embeddings_in_checkpoint = ckpt.has_embeddings
    config.architectures = [drafter_class.__name__]  # as `save_pretrained` records them, with the remote-code map
    auto_map = {
        klass._auto_class: f"{klass.__module__.rpartition('.')[2]}.{klass.__name__}"
        for klass in (type(config), drafter_class)
        if getattr(klass, "_auto_class", None)
    }
    if auto_map:
        config.auto_map = auto_map
    if ckpt.verifier.get("name_or_path") and not getattr(config, "target_name_or_path", None):
        config.target_name_or_path = ckpt.verifier["name_or_path"]
    with torch.device("meta"):
        model = drafter_class(config)
    state = dict(ckpt.state_dict)
    if not ckpt.has_embeddings:
        state["embed_tokens.weight"] = torch.zeros(config.vocab_size, config.hidden_size, dtype=state["fc.weight"].dtype)
    if dtype == "auto":
        dtype = next(state[name].dtype for name, p in model.named_parameters() if p.is_floating_point())
    if dtype != "keep":
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        config.dtype = dtype
    model.load_state_dict(state, strict=True, assign=True)  # keys and shapes were checked by `check_state_dict`
    model.embed_tokens.weight.requires_grad_(False)  # the target's embeddings, frozen (as `_build_common` makes them)
    model.embeddings_ready = ckpt.has_embeddings
    return model.eval()


__all__ = [
    "DrafterCheckpoint",
    "FORMATS",
    "NORM_OUTPUT_SEMANTICS",
    "detect_format",
    "drafter_from_checkpoint",
    "is_foreign_config",
    "load_checkpoint",
    "read_foreign",
]
