# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The format-neutral drafter checkpoint and what every format module shares: [`DrafterCheckpoint`] (an `Eagle3Config`
+ a state dict under our key names, which equal speculators' and vLLM's), reading and writing weight files, the
Llama-config fields of foreign configs, the aux-layer defaults, and the ascending-layer reorder of vLLM-family
exports. Format modules (`native`, `eagle`, `specforge`, `speculators`, `vllm`) import this one; `checkpoint`
imports them all (the pipeline: read -> check -> settle embeddings -> write).
"""

import dataclasses
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from safetensors.torch import load_file, save_file
from transformers import GenerationConfig, PretrainedConfig
from transformers.utils import logging

from ..errors import InputError
from ..modeling import SWITCH_NAMES, Eagle3Config, Eagle3Drafter
from ..utils import text_config


logger = logging.get_logger(__name__)  # `hf-eagle31 convert` shows its INFO notes (cli_utils.package_log_messages)

FORMATS = ("hf-eagle31", "eagle", "speculators", "vllm")
EMBEDDING_MODES = ("auto", "target", "source", "none")
# Our extension to foreign configs: the target's layer count, so that the implied default aux layers can be recovered
# on import. Keys a reader does not know are refused (`check_config_keys`).
TARGET_LAYERS_KEY = "target_num_hidden_layers"
OPTIONAL_KEYS = ("embed_tokens.weight", "d2t", "t2d")
SWITCHES = SWITCH_NAMES["eagle3_drafter"]  # fc_norm, norm_output, norm_before_fc, norm_before_residual
# What `norm_output: true` means, in words a user passes (--norm-output-semantics): the next chain step is fed the
# final-norm output (EAGLE-3.1; vLLM, SGLang, speculators, SpecForge from PR #879) or the pre-norm state while only
# lm_head reads the normalised one (SpecForge before PR #879, = norm_output=False here).
NORM_OUTPUT_SEMANTICS = ("post-norm-feed", "pre-norm-feed")
# Our extension to `midlayer` configs, written by `--to eagle` next to `norm_output: true`: which meaning it has.
SEMANTICS_KEY = "norm_output_semantics"
# Who loads a `--to eagle` (midlayer) export of a drafter with switches on (--eagle-consumer).
EAGLE_CONSUMERS = ("safeailab", "specforge")


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
# weights on disk
# ---------------------------------------------------------------------------------------------------------------------


def read_weights(directory: Path) -> dict:
    """All tensors of a checkpoint directory: safetensors (single or sharded) or pytorch_model.bin (single/sharded)."""
    for index_name, loader in (
        ("model.safetensors.index.json", load_file),
        ("pytorch_model.bin.index.json", lambda p: torch.load(p, map_location="cpu", weights_only=True)),
    ):
        index = directory / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            weights = {}
            for shard in shards:
                weights.update(loader(directory / shard))
            return weights
    if (directory / "model.safetensors").is_file():
        return load_file(directory / "model.safetensors")
    if (directory / "pytorch_model.bin").is_file():
        return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise InputError(
        f"{directory} has no model.safetensors or pytorch_model.bin (nor a sharded index): point SRC at a drafter "
        "checkpoint directory."
    )


def write_safetensors(state_dict: dict, directory: Path):
    tensors = {k: v.contiguous() for k, v in state_dict.items()}
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


def dtype_name(state_dict: dict) -> str:
    dtype = state_dict["fc.weight"].dtype
    return str(dtype).replace("torch.", "")


def local_dir(path_or_id) -> Path:
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(path_or_id).startswith((".", "/", "~")):
        raise InputError(f"{path_or_id} is not a checkpoint directory: pass a directory with config.json and weights.")
    patterns = ["*.json", "*.safetensors", "*.bin", "*.py", "*.md"]
    return Path(snapshot_download(str(path_or_id), allow_patterns=patterns))


# ---------------------------------------------------------------------------------------------------------------------
# what a foreign config.json may hold
# ---------------------------------------------------------------------------------------------------------------------
# A reader never drops a key it does not understand: such a key can be a newer variant's switch, or an option of
# another tool, that makes the drafter compute something else, and a conversion that ignores it writes a different
# model under the same weights. So each config a reader takes (top level, `eagle_config`, speculators'
# `transformer_layer_config`) may hold only
#   1. keys the reader reads (sizes, rope, switches, aux layers, our extensions);
#   2. keys known not to change the drafter's function: transformers' metadata of every config (`PretrainedConfig`'s
#      own fields, the generation defaults transformers 4 wrote into model configs) and Llama's training-only or
#      numerically-equivalent options (`LLAMA_NO_EFFECT`);
#   3. options whose default our drafter is (`DEFAULT_ONLY`: mlp_bias, a Llama `model_type`, Qwen's sliding-window
#      fields that SpecForge configs copy from their target), refused when set otherwise;
# and anything else is refused in one line naming the key.

# Read by `config_from_llama_dict` / `rope_from_dict`.
LLAMA_READ = {
    "vocab_size", "draft_vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
    "head_dim", "hidden_act", "rms_norm_eps", "max_position_embeddings", "rope_parameters", "rope_theta",
    "rope_scaling", "attention_bias", "bos_token_id", "eos_token_id", "pad_token_id", "num_hidden_layers",
}  # fmt: skip
# Llama options that do not change what the drafter computes at inference (training-only, the same math split
# differently, its lm_head is its own weight either way), config metadata, and Qwen's window sizes, which act only
# with `use_sliding_window` (refused when on).
LLAMA_NO_EFFECT = {
    "initializer_range", "use_cache", "attention_dropout", "pretraining_tp", "tie_word_embeddings", "architectures",
    "model_type", "torch_dtype", "dtype", "transformers_version", "auto_map", "max_window_layers", "sliding_window",
}  # fmt: skip
# Options our drafter has only at their default (value -> whether it is the default).
DEFAULT_ONLY = {
    "mlp_bias": lambda v: not v,
    "model_type": lambda v: v in (None, "llama"),
    "use_sliding_window": lambda v: not v,
    "use_aux_hidden_state": lambda v: v is None or bool(v),  # vLLM's `eagle_config`: EAGLE-3 reads the aux states
}
# Keys a drafter config of any foreign format may carry beside its Llama fields (read by `read_llama_style` and the
# speculators reader).
DRAFTER_READ = {"draft_vocab_size", "target_hidden_size", "eagle_aux_hidden_state_layer_ids", *SWITCHES}


def transformers_metadata_keys() -> set:
    """What transformers writes into any model's config.json: `PretrainedConfig`'s own fields and the generation
    defaults that transformers 4 saved with model configs (sampling defaults, not the drafter's function)."""
    keys = set(PretrainedConfig().to_dict()) | set(GenerationConfig().to_dict())
    if dataclasses.is_dataclass(PretrainedConfig):
        keys |= {f.name for f in dataclasses.fields(PretrainedConfig)}
    return keys


def check_config_keys(config: dict, known: set, where: str, fmt: str) -> None:
    """Refuses, in one line, a key of `config` the reader does not know (see above) or a `DEFAULT_ONLY` option set
    otherwise. `known`: the keys the reader reads or knows to be harmless (they win over `DEFAULT_ONLY`); `where`
    names the config in messages."""
    generic = transformers_metadata_keys()
    for key, value in config.items():
        key = str(key)
        if key in DEFAULT_ONLY and key not in known:
            if not DEFAULT_ONLY[key](value):
                raise InputError(
                    f"{where} sets {key}={value!r}, which the EAGLE-3 drafter does not implement (converting would "
                    "drop it and make a different drafter): train or export it without that option."
                )
            continue
        if key.startswith("_") or key in known or key in generic or key in DEFAULT_ONLY:
            continue
        raise InputError(
            f"{where} has `{key}`, which the hf-eagle31 {fmt} reader does not know (a newer variant's switch, or "
            "another tool's option): converting would silently drop it; use an hf-eagle31 release that reads it, or "
            "delete it from config.json if you know it does not change the model."
        )


# ---------------------------------------------------------------------------------------------------------------------
# Llama-style configs (EAGLE, SpecForge, vLLM configs and speculators' transformer_layer_config)
# ---------------------------------------------------------------------------------------------------------------------


def rope_from_dict(d: dict) -> dict:
    """transformers-5 `rope_parameters`, or the older `rope_theta` + `rope_scaling` (EAGLE configs omit both: 1e4)."""
    if isinstance(d.get("rope_parameters"), dict):
        params = dict(d["rope_parameters"])
        params.setdefault("rope_type", "default")
        params.setdefault("rope_theta", float(d.get("rope_theta", 10000.0)))
        return params
    params = {"rope_type": "default", "rope_theta": float(d.get("rope_theta", 10000.0))}
    scaling = d.get("rope_scaling")
    if isinstance(scaling, dict):
        scaling = dict(scaling)
        scaling["rope_type"] = scaling.pop("type", None) or scaling.get("rope_type", "default")
        params.update(scaling)
    return params


def resolve_layer_ids(config: dict, fmt: str, num_layers, override) -> list:
    if override is not None:
        return [int(i) for i in override]
    ids = config.get("eagle_aux_hidden_state_layer_ids")
    if ids:
        return [int(i) for i in ids]
    nested = (config.get("eagle_config") or {}).get("eagle_aux_hidden_state_layer_ids")
    if nested:
        raise InputError(
            f"config.json has only eagle_config.eagle_aux_hidden_state_layer_ids={nested}, which vLLM reads as inputs "
            "of layer i and SGLang as outputs of layer i: pass target_layer_ids (--target-layer-ids) as indices into "
            "the target's HF `hidden_states` (= input of layer i; SGLang's ids + 1)."
        )
    if num_layers is None:
        raise InputError(
            f"this {fmt} checkpoint does not say which target layers it reads (they are implied by the target's layer "
            "count): pass --target (its config is read) or --target-layer-ids."
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


def target_layers(config: dict, target_config) -> int | None:
    if config.get(TARGET_LAYERS_KEY) is not None:
        return int(config[TARGET_LAYERS_KEY])
    if target_config is not None:
        return text_config(target_config).num_hidden_layers
    return None


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
    """An `Eagle3Drafter` holding exactly the checkpoint's tensors (same dtypes); embeddings ready iff present."""
    with torch.device("meta"):
        model = Eagle3Drafter(ckpt.config)
    missing, _ = model.load_state_dict(ckpt.state_dict, strict=False, assign=True)
    if missing and missing != ["embed_tokens.weight"]:
        raise InputError(f"checkpoint misses {missing}: it cannot be loaded as a drafter.")
    if missing:  # never saved (include_embeddings=False) and never used before load_target_embeddings
        weight = torch.zeros(ckpt.config.vocab_size, ckpt.config.hidden_size, dtype=ckpt.state_dict["fc.weight"].dtype)
        model.embed_tokens.weight = torch.nn.Parameter(weight, requires_grad=False)
    model.embeddings_ready = ckpt.has_embeddings
    return model.eval()


def read_llama_style(directory, config: dict, state: dict, fmt: str, target_config, layer_ids) -> DrafterCheckpoint:
    """The config of an EAGLE / SpecForge (`midlayer`, renamed by the caller) or vLLM (`layers.N`) directory: a Llama
    config + the switches (top level, or inside `eagle_config` as vLLM also accepts); keys it does not know refused."""
    where = directory / "config.json"
    extensions = {TARGET_LAYERS_KEY, "eagle_config"} | ({SEMANTICS_KEY} if fmt == "eagle" else set())
    check_config_keys(config, LLAMA_READ | LLAMA_NO_EFFECT | DRAFTER_READ | extensions, str(where), fmt)
    if isinstance(config.get("eagle_config"), dict):
        nested = {"eagle_aux_hidden_state_layer_ids", *SWITCHES}
        check_config_keys(config["eagle_config"], nested, f"{where} eagle_config", fmt)
    # vocab: `t2d` has the target's size; config `vocab_size` is the target's too in every published EAGLE-3 config.
    vocab_size = state["t2d"].shape[0] if "t2d" in state else config["vocab_size"]
    num_layers = target_layers(config, target_config)
    ids = resolve_layer_ids(config, fmt, num_layers, layer_ids)
    eagle_config = config.get("eagle_config") or {}
    switches = {name: bool(config.get(name, eagle_config.get(name, False))) for name in SWITCHES}
    target_hidden = config.get("target_hidden_size") or config["hidden_size"]
    cfg = config_from_llama_dict(
        config,
        vocab_size=vocab_size,
        layer_ids=ids,
        num_layers=num_layers,
        extra=dict(target_hidden_size=target_hidden, **switches),
    )
    return DrafterCheckpoint(cfg, state, fmt)


def switches_on(cfg) -> list:
    return [name for name in SWITCHES if getattr(cfg, name, False)]
