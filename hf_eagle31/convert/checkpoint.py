"""
Checkpoint conversion between hf-eagle31, SafeAILab EAGLE-3 / SpecForge, vllm-project/speculators and vLLM.

    hf-eagle31 convert SRC DST --to {hf-eagle31,eagle,speculators,vllm} [--target PATH_OR_ID]

The source format is detected from `config.json` and the weight names. Every conversion goes through one
format-neutral [`DrafterCheckpoint`] (an `Eagle3Config` + a state dict under our key names, which equal
speculators' and vLLM's), so weights are copied, never recomputed: a round trip is bit-identical.

Drafter depth (`num_hidden_layers`): hf-eagle31, vLLM and speculators store any depth (`layers.0.*` reads the 2H-wide
token ‖ hidden input, `layers.1.*` ... are Llama decoder layers; the depth is the Llama config's `num_hidden_layers`).
The EAGLE format has one `midlayer`: deeper drafters are refused there, on export and on import.

Aux-layer (captured target state) conventions, and how conversion maps them:

| format          | where the ids live                                   | id `i` is                   | ours     |
|-----------------|------------------------------------------------------|-----------------------------|----------|
| hf-eagle31      | `target_layer_ids`                                   | HF `hidden_states[i]`       | `i`      |
| EAGLE/SpecForge | nowhere: implied `(2, L//2, L-3)`                    | input of layer i            | `i` (*)  |
| speculators     | `eagle_aux_hidden_state_layer_ids` (None = default)  | input of layer i            | `i`      |
| vLLM            | top-level `eagle_aux_hidden_state_layer_ids`         | input of layer i            | `i`      |
| SGLang          | `eagle_config.eagle_aux_hidden_state_layer_ids`      | OUTPUT of layer i           | `i + 1`  |

(*) other layouts cannot be written as EAGLE (refused). HF `hidden_states[i]` is the input of decoder layer i.

Two consequences: the key `eagle_config.eagle_aux_hidden_state_layer_ids` means different layers to vLLM and SGLang,
so an import that finds only that key refuses to guess (pass `target_layer_ids`); and vLLM captures states in
ascending layer order, so exports to vLLM/speculators reorder `fc`'s input columns (and `fc_norm`) to ascending ids,
which computes exactly the same function. `hidden_states[L]` is the one id where conventions differ in content:
transformers returns it after the final norm, vLLM/SGLang before it.

Embeddings are the target's. A checkpoint may carry them or leave them out (every loader here then takes them from
the target); conversion never writes made-up ones: see [`settle_embeddings`].
"""

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, LlamaConfig
from transformers.utils import logging

from ..errors import InputError, modeling_checks_are_input_errors
from ..hub import save_drafter  # converted hf-eagle31 checkpoints get a README.md
from ..loading import check_known_drafter_type
from ..modeling import SWITCH_NAMES, Eagle3Config, Eagle3Drafter, MtpConfig
from ..targets import load_target
from ..utils import text_config
from ..utils.io import atomic_directory, is_drafter_dir, output_lock, write_errors_name


logger = logging.get_logger(__name__)  # `hf-eagle31 convert` shows its INFO notes (cli_utils.package_log_messages)

FORMATS = ("hf-eagle31", "eagle", "speculators", "vllm")
EMBEDDING_MODES = ("auto", "target", "source", "none")

EAGLE_ARCHITECTURE = "LlamaForCausalLMEagle3"  # SafeAILab EAGLE-3 and SpecForge; vLLM and SGLang map it to Eagle3
SPECULATORS_ARCHITECTURE = "Eagle3Speculator"  # as in published speculators checkpoints (0.9 writes Eagle3DraftModel)
# Our extension to foreign configs: the target's layer count, so that the implied default aux layers can be recovered
# on import. Unknown keys are ignored by every reader (transformers configs keep them as attributes).
TARGET_LAYERS_KEY = "target_num_hidden_layers"
_OPTIONAL_KEYS = ("embed_tokens.weight", "d2t", "t2d")
SWITCHES = SWITCH_NAMES["eagle3_drafter"]  # fc_norm, norm_output, norm_before_fc, norm_before_residual


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


def _read_weights(directory: Path) -> dict:
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


def _write_safetensors(state_dict: dict, directory: Path):
    tensors = {k: v.contiguous() for k, v in state_dict.items()}
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


def _dtype_name(state_dict: dict) -> str:
    dtype = state_dict["fc.weight"].dtype
    return str(dtype).replace("torch.", "")


def _local_dir(path_or_id) -> Path:
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(path_or_id).startswith((".", "/", "~")):
        raise InputError(f"{path_or_id} is not a checkpoint directory: pass a directory with config.json and weights.")
    patterns = ["*.json", "*.safetensors", "*.bin", "*.py", "*.md"]
    return Path(snapshot_download(str(path_or_id), allow_patterns=patterns))


# ---------------------------------------------------------------------------------------------------------------------
# format detection and reading
# ---------------------------------------------------------------------------------------------------------------------


def detect_format(path) -> str:
    """One of `FORMATS` for a checkpoint directory, from its config.json (and weight names: EAGLE vs vLLM)."""
    directory = Path(path)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise InputError(f"{directory} has no config.json: point SRC at a drafter checkpoint directory.")
    config = json.loads(config_path.read_text())
    if "speculators_model_type" in config:
        return "speculators"
    if config.get("model_type") in (Eagle3Config.model_type, MtpConfig.model_type):
        return "hf-eagle31"
    architectures = config.get("architectures") or []
    if any("Eagle3" in a for a in architectures) or "draft_vocab_size" in config:
        keys = _read_weights(directory).keys()
        return "eagle" if any(k.startswith("midlayer.") for k in keys) else "vllm"
    raise InputError(
        f"cannot tell the format of {directory}: config.json has architectures={architectures} and no "
        "`speculators_model_type`; pass the format explicitly (--from eagle|speculators|vllm|hf-eagle31)."
    )


def _rope_from_dict(d: dict) -> dict:
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


def _resolve_layer_ids(config: dict, fmt: str, num_layers, override) -> list:
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


def _config_from_llama_dict(d: dict, *, vocab_size, layer_ids, num_layers, rope=None, extra=None) -> Eagle3Config:
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
        rope_parameters=rope if rope is not None else _rope_from_dict(d),
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


def _target_layers(config: dict, target_config) -> int | None:
    if config.get(TARGET_LAYERS_KEY) is not None:
        return int(config[TARGET_LAYERS_KEY])
    if target_config is not None:
        return text_config(target_config).num_hidden_layers
    return None


def _read_eagle_like(directory, config, weights, fmt, target_config, layer_ids):
    """SafeAILab EAGLE-3 / SpecForge (`midlayer.*`, one layer) and vLLM (`layers.N.*`) directories: a Llama config +
    switches."""
    if fmt == "eagle" and config.get("num_hidden_layers", 1) != 1:
        raise InputError(
            f"{directory}: the EAGLE format holds one decoder layer (`midlayer.*`); this drafter has "
            f"{config['num_hidden_layers']} (config.json num_hidden_layers): convert its vLLM or speculators export "
            "(`layers.N.*`) instead."
        )
    legacy = {
        "midlayer.": "layers.0.",
        "aux_norm_low.": "fc_norm.0.",
        "aux_norm_mid.": "fc_norm.1.",
        "aux_norm_high.": "fc_norm.2.",
    }  # SGLang's older names for fc_norm
    state = {}
    for key, value in weights.items():
        for old, new in legacy.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        state[key] = value
    # vocab: `t2d` has the target's size; config `vocab_size` is the target's too in every published EAGLE-3 config.
    vocab_size = state["t2d"].shape[0] if "t2d" in state else config["vocab_size"]
    num_layers = _target_layers(config, target_config)
    ids = _resolve_layer_ids(config, fmt, num_layers, layer_ids)
    eagle_config = config.get("eagle_config") or {}
    switches = {name: bool(config.get(name, eagle_config.get(name, False))) for name in SWITCHES}
    target_hidden = config.get("target_hidden_size") or config["hidden_size"]
    cfg = _config_from_llama_dict(
        config,
        vocab_size=vocab_size,
        layer_ids=ids,
        num_layers=num_layers,
        extra=dict(target_hidden_size=target_hidden, **switches),
    )
    return DrafterCheckpoint(cfg, state, fmt)


def _read_speculators(directory, config, weights, target_config, layer_ids):
    algorithm = config.get("speculators_model_type")
    if algorithm != "eagle3":
        raise InputError(
            f"{directory} is a speculators `{algorithm}` checkpoint: only `eagle3` converts to an EAGLE-3 drafter."
        )
    layer = dict(config["transformer_layer_config"])
    if layer.get("model_type", "llama") != "llama":
        raise InputError(
            f"{directory} has `{layer.get('model_type')}` draft layers: only the Llama-style layers of EAGLE-3 (no "
            "q/k norms) convert; retrain or export with model_type llama."
        )
    if layer.get("mlp_bias"):
        raise InputError(f"{directory} uses mlp_bias=True, which the EAGLE-3 drafter does not have.")
    verifier = dict((config.get("speculators_config") or {}).get("verifier") or {})
    proposals = (config.get("speculators_config") or {}).get("proposal_methods") or [{}]
    num_layers = _target_layers(config, target_config)
    ids = _resolve_layer_ids(config, "speculators", num_layers, layer_ids)
    vocab_size = layer["vocab_size"]
    draft_vocab = config.get("draft_vocab_size") or vocab_size
    state = dict(weights)
    if draft_vocab == vocab_size and "d2t" not in state:
        # speculators keeps no mapping buffers when the draft vocabulary is the whole vocabulary: identity.
        state["d2t"] = torch.zeros(draft_vocab, dtype=torch.long)
        state["t2d"] = torch.ones(vocab_size, dtype=torch.bool)
    layer["draft_vocab_size"] = draft_vocab
    cfg = _config_from_llama_dict(
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


def _read_ours(directory, weights, layer_ids, embeddings_from_target):
    config = json.loads((directory / "config.json").read_text())
    if config.get("model_type") != Eagle3Config.model_type:
        raise InputError(
            f"{directory} is an MTP drafter: MTP heads are served from the target's own checkpoint by vLLM/SGLang, so "
            "only EAGLE-3 / EAGLE-3.1 drafters convert to other formats."
        )
    cfg = Eagle3Config.from_pretrained(directory)
    if layer_ids is not None:
        cfg.target_layer_ids = [int(i) for i in layer_ids]
    if cfg.embeddings_in_checkpoint and "embed_tokens.weight" not in weights and not embeddings_from_target:
        raise InputError(
            f"{directory} says embeddings_in_checkpoint=True but has no embed_tokens.weight (incomplete checkpoint): "
            "pass --target to take the target's embeddings."
        )
    return DrafterCheckpoint(cfg, dict(weights), "hf-eagle31", verifier=_ours_verifier(cfg))


def _ours_verifier(cfg):
    name = getattr(cfg, "target_name_or_path", None)
    return {"name_or_path": name, "architectures": []} if name else {}


@modeling_checks_are_input_errors()
def read_checkpoint(
    path, format=None, target_config=None, target_layer_ids=None, embeddings_from_target=False
) -> DrafterCheckpoint:
    """
    Reads a drafter checkpoint directory (or Hub id) of any supported format into a [`DrafterCheckpoint`].

    target_config: the target's config; gives the layer count when the checkpoint implies its aux layers (EAGLE) and
        is checked against the drafter's sizes.
    target_layer_ids: overrides the aux layers, as indices into the target's HF `hidden_states`.
    embeddings_from_target: accept an hf-eagle31 checkpoint that declares embeddings but lost them (they will be
        taken from the target by [`settle_embeddings`]).
    """
    directory = _local_dir(path)
    fmt = format or detect_format(directory)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: use one of {list(FORMATS)}.")
    config = json.loads((directory / "config.json").read_text())
    weights = _read_weights(directory)
    if fmt == "hf-eagle31":
        ckpt = _read_ours(directory, weights, target_layer_ids, embeddings_from_target)
    elif fmt == "speculators":
        ckpt = _read_speculators(directory, config, weights, target_config, target_layer_ids)
    else:
        ckpt = _read_eagle_like(directory, config, weights, fmt, target_config, target_layer_ids)
    _check_state_dict(ckpt)
    ckpt = _with_identity_vocab_map(ckpt)
    _check_layer_ids(ckpt.config)
    if target_config is not None:
        _check_against_target(ckpt.config, target_config)
        _record_target_layer_count(ckpt.config, target_config)
    return ckpt


def _check_layer_ids(cfg: Eagle3Config):
    """Aux layers a reader would accept: distinct, and valid for the config (in range of the target's layers when
    known) — checked here, so that no checkpoint is written that fails only when read back."""
    ids = list(cfg.target_layer_ids)
    if len(set(ids)) != len(ids):
        raise InputError(f"target_layer_ids={ids} repeats a layer: pass distinct ids (--target-layer-ids).")
    type(cfg).from_dict(cfg.to_dict())  # the config's own checks, as on load


def _expected_shapes(config: Eagle3Config) -> dict:
    with torch.device("meta"):
        model = Eagle3Drafter(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check_state_dict(ckpt: DrafterCheckpoint):
    """Every tensor must have a place in the drafter and every place but the optional ones a tensor: no silent drops."""
    expected = _expected_shapes(ckpt.config)
    unexpected = sorted(set(ckpt.state_dict) - set(expected))
    missing = sorted(set(expected) - set(ckpt.state_dict) - set(_OPTIONAL_KEYS))
    if unexpected or missing:
        raise InputError(
            f"the {ckpt.source_format} checkpoint does not match an EAGLE-3 drafter with its config "
            f"(num_hidden_layers={ckpt.config.num_hidden_layers}, fc_norm={ckpt.config.fc_norm}, "
            f"norm_before_fc={ckpt.config.norm_before_fc}): unexpected keys "
            f"{unexpected[:8]}, missing keys {missing[:8]}; fix its config.json switches to match its weights."
        )
    for key, tensor in ckpt.state_dict.items():
        if tuple(tensor.shape) != expected[key]:
            raise InputError(
                f"{key} has shape {tuple(tensor.shape)} but the config implies {expected[key]}: the config.json sizes "
                "(hidden_size, target_hidden_size, draft_vocab_size, heads) do not match the weights."
            )
    if ("d2t" in ckpt.state_dict) != ("t2d" in ckpt.state_dict):
        raise InputError("the checkpoint has only one of d2t / t2d: both are needed to map the draft vocabulary.")
    if "d2t" not in ckpt.state_dict and ckpt.config.draft_vocab_size != ckpt.config.vocab_size:
        raise InputError(
            f"draft_vocab_size={ckpt.config.draft_vocab_size} < vocab_size={ckpt.config.vocab_size} but the "
            "checkpoint has no d2t/t2d mapping: it is incomplete; re-export it with its vocabulary mapping."
        )


def _with_identity_vocab_map(ckpt: DrafterCheckpoint) -> DrafterCheckpoint:
    """A full draft vocabulary needs no mapping on disk (speculators writes none): give it the identity d2t / t2d
    our drafters carry. Checkpoints that have a mapping are returned unchanged."""
    if "d2t" in ckpt.state_dict:
        return ckpt
    state = dict(ckpt.state_dict)
    state["d2t"] = torch.zeros(ckpt.config.draft_vocab_size, dtype=torch.long)
    state["t2d"] = torch.ones(ckpt.config.vocab_size, dtype=torch.bool)
    return replace(ckpt, state_dict=state)


def _check_against_target(cfg: Eagle3Config, target_config):
    text = text_config(target_config)
    for what, mine, theirs in (
        ("vocab size", cfg.vocab_size, text.vocab_size),
        ("hidden size", cfg.target_hidden_size, text.hidden_size),
    ):
        if mine != theirs:
            raise InputError(
                f"the drafter expects a target {what} of {mine} but --target has {theirs}: pass the target this "
                "drafter was trained for."
            )
    if max(cfg.target_layer_ids) > text.num_hidden_layers:
        raise InputError(
            f"target_layer_ids={cfg.target_layer_ids} reach past the target's {text.num_hidden_layers} layers: pass "
            "the right target or --target-layer-ids."
        )


def _record_target_layer_count(cfg: Eagle3Config, target_config):
    """Fills in `cfg.target_num_hidden_layers` (in place) from the target when the checkpoint did not record it;
    exports write it, so the implied EAGLE aux layers can be recovered on import."""
    if cfg.target_num_hidden_layers is None:
        cfg.target_num_hidden_layers = text_config(target_config).num_hidden_layers


# ---------------------------------------------------------------------------------------------------------------------
# embeddings
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class TargetSource:
    """The target as conversion needs it: a name, its config, and its input embeddings (read only on demand)."""

    name: str | None
    config: object
    get_embeddings: object


def load_target_parts(target) -> TargetSource:
    """
    Resolves a target given as a model, a local directory, or a Hub id / embedded name (`hf_eagle31.targets`).

    From a local safetensors directory the embedding matrix is read alone, so an 8B target never sits in memory;
    anything else is loaded with `hf_eagle31.targets.load_target`.
    """
    if isinstance(target, TargetSource):
        return target
    if hasattr(target, "get_input_embeddings"):
        name = getattr(target.config, "_name_or_path", None) or None
        return TargetSource(name, target.config, lambda: target.get_input_embeddings().weight.detach())
    name = str(target)
    directory = Path(name).expanduser()
    if directory.is_dir():
        config = AutoConfig.from_pretrained(directory)

        def embeddings():
            weight = _embedding_from_safetensors(directory, text_config(config))
            return weight if weight is not None else _embedding_from_model(name)

        return TargetSource(name, config, embeddings)
    model, _ = load_target(name)
    return TargetSource(name, model.config, lambda: model.get_input_embeddings().weight.detach())


def _embedding_from_safetensors(directory: Path, text_config):
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
    elif (directory / "model.safetensors").is_file():
        with safe_open(directory / "model.safetensors", "pt") as f:
            weight_map = {k: "model.safetensors" for k in f.keys()}
    else:
        return None
    shape = (text_config.vocab_size, text_config.hidden_size)
    candidates = sorted((k for k in weight_map if k.endswith("embed_tokens.weight")), key=len)
    for key in candidates:
        with safe_open(directory / weight_map[key], "pt") as f:
            if tuple(f.get_slice(key).get_shape()) == shape:
                return f.get_tensor(key)
    return None


def _embedding_from_model(name):
    model, _ = load_target(name)
    return model.get_input_embeddings().weight.detach()


def settle_embeddings(ckpt: DrafterCheckpoint, to: str, target=None, mode="auto") -> DrafterCheckpoint:
    """
    Decides what the written checkpoint carries as input embeddings. Never invents them.

    mode "auto": keep the source's (checked against `target` when given: a mismatch means random or foreign
        embeddings and raises); fill absent ones from `target`; with no target, write none where the destination's
        loader takes them from the target (hf-eagle31 records `embeddings_in_checkpoint=False`; EAGLE, vLLM and SGLang
        share the target's; speculators loads its verifier's, so it needs the verifier's name), else refuse.
    mode "target": replace with the target's. "source": keep the source's unchecked (e.g. trained with
    `embed_requires_grad`). "none": write none.
    """
    if mode not in EMBEDDING_MODES:
        raise InputError(f"unknown embeddings mode {mode!r}: use one of {list(EMBEDDING_MODES)}.")
    state = dict(ckpt.state_dict)
    get_embeddings = None
    if target is not None:
        source = load_target_parts(target)
        get_embeddings = source.get_embeddings
        _check_against_target(ckpt.config, source.config)
        _record_target_layer_count(ckpt.config, source.config)
        if not ckpt.verifier.get("name_or_path") and source.name:
            architectures = list(getattr(source.config, "architectures", None) or [])
            ckpt = replace(ckpt, verifier={"name_or_path": source.name, "architectures": architectures})
    expected = (ckpt.config.vocab_size, ckpt.config.hidden_size)

    def from_target():
        if get_embeddings is None:
            raise InputError(f"--embeddings {mode} needs --target (a directory, Hub id or model) to read them from.")
        weight = get_embeddings()
        if tuple(weight.shape) != expected:
            raise InputError(
                f"the target's embeddings have shape {tuple(weight.shape)} but the drafter expects {expected}: pass "
                "the target this drafter was trained for."
            )
        return weight.to(state["fc.weight"].dtype).contiguous()

    if mode == "none":
        state.pop("embed_tokens.weight", None)
    elif mode == "target":
        state["embed_tokens.weight"] = from_target()
    elif mode == "source":
        if "embed_tokens.weight" not in state:
            raise InputError("--embeddings source, but the source checkpoint has no embed_tokens.weight.")
    elif "embed_tokens.weight" in state:
        if get_embeddings is not None and not getattr(ckpt.config, "embed_requires_grad", False):
            reference = from_target()
            if not torch.equal(state["embed_tokens.weight"], reference):
                gap = (state["embed_tokens.weight"].float() - reference.float()).abs().max().item()
                raise InputError(
                    f"the source's embed_tokens differ from the target's (max |diff| = {gap:.3g}): they are random or "
                    "from another model. Rerun with --embeddings target to replace them with the target's, or "
                    "--embeddings source to keep them (drafters trained with unfrozen embeddings)."
                )
    elif get_embeddings is not None:
        state["embed_tokens.weight"] = from_target()
    elif to == "speculators" and not ckpt.verifier.get("name_or_path"):
        raise InputError(
            "the source has no embeddings and the speculators format can only load them from a named verifier: pass "
            "--target (the target's directory or Hub id) to embed them or record it."
        )
    else:
        logger.info("no embeddings in the source: writing none; %s loads the target's at load time.", to)
    return replace(ckpt, state_dict=state)


# ---------------------------------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------------------------------


def _ascending(ckpt: DrafterCheckpoint, to: str) -> DrafterCheckpoint:
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


def _llama_fields(cfg: Eagle3Config, dtype: str) -> dict:
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


def _eagle_config(ckpt: DrafterCheckpoint, to: str) -> dict:
    cfg = ckpt.config
    config = {"architectures": [EAGLE_ARCHITECTURE], "model_type": "llama"}
    config.update(_llama_fields(cfg, _dtype_name(ckpt.state_dict)))
    config["draft_vocab_size"] = cfg.draft_vocab_size
    if to == "vllm":
        # vLLM reads every switch at the top level; written even when False because a missing norm_before_residual
        # is read as True on vLLM's speculators path.
        config["target_hidden_size"] = cfg.target_hidden_size
        config.update({name: bool(getattr(cfg, name)) for name in SWITCHES})
        config["eagle_aux_hidden_state_layer_ids"] = list(cfg.target_layer_ids)
    else:
        # As SafeAILab / SpecForge publish: only what differs from plain EAGLE-3 (SpecForge's 3.1 adds the switches).
        if cfg.target_hidden_size != cfg.hidden_size:
            config["target_hidden_size"] = cfg.target_hidden_size
        config.update({name: True for name in SWITCHES if getattr(cfg, name)})
    if cfg.target_num_hidden_layers is not None:
        config[TARGET_LAYERS_KEY] = cfg.target_num_hidden_layers
    return config


def _speculators_config(ckpt: DrafterCheckpoint, num_speculative_tokens) -> dict:
    cfg = ckpt.config
    # speculators serializes its layer config with `LlamaConfig(...).to_diff_dict()`; so do we.
    layer = LlamaConfig(**_llama_fields(cfg, _dtype_name(ckpt.state_dict))).to_diff_dict()
    layer["model_type"] = "llama"
    verifier = {
        "architectures": list(ckpt.verifier.get("architectures") or []),
        "name_or_path": ckpt.verifier.get("name_or_path"),
    }
    tokens = num_speculative_tokens or ckpt.speculative_tokens or 3
    config = {
        "architectures": [SPECULATORS_ARCHITECTURE],
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
        "dtype": _dtype_name(ckpt.state_dict),
        **{name: bool(getattr(cfg, name)) for name in SWITCHES},
    }
    if cfg.target_num_hidden_layers is not None:
        config[TARGET_LAYERS_KEY] = cfg.target_num_hidden_layers
    return config


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


def write_checkpoint(ckpt: DrafterCheckpoint, path, to: str, num_speculative_tokens=None, model_card=None) -> Path:
    """Writes `ckpt` as a `to`-format directory (created; must be empty or absent). Returns the directory."""
    if to not in FORMATS:
        raise InputError(f"unknown format {to!r}: use one of {list(FORMATS)}.")
    directory = Path(path)
    if directory.exists() and any(directory.iterdir()):
        raise InputError(f"{directory} exists and is not empty: choose a new DST or pass --overwrite.")
    with write_errors_name(directory):
        directory.mkdir(parents=True, exist_ok=True)
        return _write_checkpoint_files(ckpt, directory, to, num_speculative_tokens, model_card)


def _write_checkpoint_files(ckpt, directory, to, num_speculative_tokens, model_card) -> Path:
    cfg = ckpt.config
    if to == "hf-eagle31":
        model = drafter_from_checkpoint(ckpt)
        if ckpt.verifier.get("name_or_path") and not getattr(model.config, "target_name_or_path", None):
            model.config.target_name_or_path = ckpt.verifier["name_or_path"]
        if model_card is None:
            model_card = {"base_model": ckpt.verifier.get("name_or_path")}
        save_drafter(model, directory, include_embeddings=ckpt.has_embeddings, model_card=model_card)
        return directory
    if to == "eagle":
        if cfg.num_hidden_layers != 1:
            raise InputError(
                f"the EAGLE format holds one decoder layer (`midlayer.*`); this drafter has {cfg.num_hidden_layers}: "
                "use --to vllm or --to speculators (`layers.N.*`, any depth)."
            )
        # The ids are EAGLE's default for exactly one layer count, L = ids[2] + 3 (when the target's is unknown).
        layers = cfg.target_num_hidden_layers or cfg.target_layer_ids[-1] + 3
        default = [2, layers // 2, layers - 3]
        if list(cfg.target_layer_ids) != default:
            raise InputError(
                f"target_layer_ids={cfg.target_layer_ids} is not EAGLE's implied default {default}: the EAGLE format "
                "cannot store aux layers, so this drafter would read the wrong layers. Use --to vllm (same weights, "
                "records the layers) or --to speculators."
            )
        state = {
            ("midlayer." + k[len("layers.0.") :] if k.startswith("layers.0.") else k): v
            for k, v in ckpt.state_dict.items()
        }
        config = _eagle_config(ckpt, to)
    else:
        ckpt = _ascending(ckpt, to)
        if cfg.target_num_hidden_layers is not None and cfg.target_num_hidden_layers in ckpt.config.target_layer_ids:
            logger.warning(
                "aux layer %d is the last hidden state: transformers returns it after the final norm, vLLM/SGLang "
                "before it; this drafter sees different features there.",
                cfg.target_num_hidden_layers,
            )
        state = dict(ckpt.state_dict)
        if to == "speculators":
            config = _speculators_config(ckpt, num_speculative_tokens)
            if cfg.draft_vocab_size == cfg.vocab_size:
                # speculators registers no mapping buffers for a full draft vocabulary; ours must then be identity.
                if state["d2t"].any() or not state["t2d"].all():
                    raise InputError("draft_vocab_size == vocab_size but d2t is not the identity: corrupt checkpoint.")
                del state["d2t"], state["t2d"]
        else:
            config = _eagle_config(ckpt, to)
    _write_safetensors(state, directory)
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory


@modeling_checks_are_input_errors()
def convert_checkpoint(
    src,
    dst,
    to,
    source_format=None,
    target=None,
    embeddings="auto",
    target_layer_ids=None,
    num_speculative_tokens=None,
    overwrite=False,
    model_card=None,
) -> DrafterCheckpoint:
    """Reads `src` (any format, detected), settles its embeddings, writes `dst` as `to`. Returns what was written."""
    target_path = target
    if Path(src, "config.json").is_file():  # a newer drafter variant is not a foreign format to convert
        check_known_drafter_type(json.loads(Path(src, "config.json").read_text()), src)
    target = load_target_parts(target) if target is not None else None
    ckpt = read_checkpoint(
        src,
        source_format,
        target_config=target.config if target else None,
        target_layer_ids=target_layer_ids,
        embeddings_from_target=target is not None,
    )
    ckpt = settle_embeddings(ckpt, to, target=target, mode=embeddings)
    # Written into a temporary sibling and renamed into place when complete; --overwrite replaces only a drafter
    # folder of ours, never one that is or holds the source (utils/io.py).
    with (
        output_lock(dst),
        atomic_directory(dst, overwrite, sources=[src, target_path], is_ours=is_drafter_dir, what="drafter") as tmp,
    ):
        write_checkpoint(ckpt, tmp, to, num_speculative_tokens=num_speculative_tokens, model_card=model_card)
    return ckpt
