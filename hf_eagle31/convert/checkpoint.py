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

Embeddings are the target's. A checkpoint may carry them or leave them out (hf-eagle31, EAGLE, vLLM and SGLang then
take them from the target; speculators 0.9.0 loads zeros, so `--to speculators` writes the target's or refuses);
conversion never writes made-up ones: see [`settle_embeddings`].

`norm_output: true` means post-norm-feed everywhere but in `midlayer` checkpoints of SpecForge before its PR #879
(pre-norm-feed): see `specforge`. Modules: `neutral` (the format-neutral checkpoint and shared helpers), one per
format (`native` = hf-eagle31, `eagle` = SafeAILab / SpecForge `midlayer`, `specforge` = its two `norm_output` eras,
`speculators`, `vllm`), and this one: detect -> read -> check -> settle embeddings -> write.
"""

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoConfig
from transformers.utils import logging

from ..errors import InputError, modeling_checks_are_input_errors
from ..loading import check_known_drafter_type
from ..modeling import Eagle3Config, Eagle3Drafter, MtpConfig
from ..targets import load_target
from ..utils import text_config
from ..utils.io import atomic_directory, is_drafter_dir, output_lock, write_errors_name
from . import eagle, native, speculators, vllm
from .neutral import (
    EMBEDDING_MODES,
    FORMATS,
    NORM_OUTPUT_SEMANTICS,
    OPTIONAL_KEYS,
    DrafterCheckpoint,
    ascending,
    local_dir,
    read_weights,
    write_safetensors,
)


logger = logging.get_logger(__name__)  # `hf-eagle31 convert` shows its INFO notes (cli_utils.package_log_messages)


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
        keys = read_weights(directory).keys()
        return "eagle" if any(k.startswith("midlayer.") for k in keys) else "vllm"
    raise InputError(
        f"cannot tell the format of {directory}: config.json has architectures={architectures} and no "
        "`speculators_model_type`; pass the format explicitly (--from eagle|speculators|vllm|hf-eagle31)."
    )


@modeling_checks_are_input_errors()
def read_checkpoint(
    path,
    format=None,
    target_config=None,
    target_layer_ids=None,
    embeddings_from_target=False,
    norm_output_semantics=None,
) -> DrafterCheckpoint:
    """
    Reads a drafter checkpoint directory (or Hub id) of any supported format into a [`DrafterCheckpoint`].

    target_config: the target's config; gives the layer count when the checkpoint implies its aux layers (EAGLE) and
        is checked against the drafter's sizes.
    target_layer_ids: overrides the aux layers, as indices into the target's HF `hidden_states`.
    embeddings_from_target: accept an hf-eagle31 checkpoint that declares embeddings but lost them (they will be
        taken from the target by [`settle_embeddings`]).
    norm_output_semantics: what `norm_output: true` means in a `midlayer` (SpecForge) checkpoint that does not record
        it (`NORM_OUTPUT_SEMANTICS`: "post-norm-feed" = SpecForge from PR #879, vLLM, SGLang; "pre-norm-feed" =
        SpecForge before #879, read as norm_output=False). Such a checkpoint without it is refused.
    """
    if norm_output_semantics is not None and norm_output_semantics not in NORM_OUTPUT_SEMANTICS:
        raise InputError(
            f"unknown norm_output meaning {norm_output_semantics!r}: use one of {list(NORM_OUTPUT_SEMANTICS)}."
        )
    directory = local_dir(path)
    fmt = format or detect_format(directory)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: use one of {list(FORMATS)}.")
    config = json.loads((directory / "config.json").read_text())
    weights = read_weights(directory)
    if fmt == "hf-eagle31":
        ckpt = native.read(directory, weights, target_layer_ids, embeddings_from_target)
    else:
        reader = {"eagle": eagle.read, "speculators": speculators.read, "vllm": vllm.read}[fmt]
        ckpt = reader(directory, config, weights, target_config, target_layer_ids, norm_output_semantics)
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
    missing = sorted(set(expected) - set(ckpt.state_dict) - set(OPTIONAL_KEYS))
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


def settle_embeddings(
    ckpt: DrafterCheckpoint, to: str, target=None, mode="auto", allow_missing_embeddings=False
) -> DrafterCheckpoint:
    """
    Decides what the written checkpoint carries as input embeddings. Never invents them.

    mode "auto": keep the source's (checked against `target` when given, in the source's dtype: a mismatch means
        random or foreign embeddings and raises); fill absent ones from `target`; with no target, write none where
        the destination's loader takes them from the target (hf-eagle31 records `embeddings_in_checkpoint=False`;
        EAGLE, vLLM and SGLang share the target's).
    mode "target": replace with the target's. "source": keep the source's unchecked (e.g. trained with
    `embed_requires_grad`). "none": write none.
    A speculators export without embeddings is refused unless `allow_missing_embeddings` (for vLLM, which takes the
    target's): speculators 0.9.0 loads them as zeros (its NaN check misses bf16 checkpoints) and drafts garbage.
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

    def from_target(dtype):
        if get_embeddings is None:
            raise InputError(f"--embeddings {mode} needs --target (a directory, Hub id or model) to read them from.")
        weight = get_embeddings()
        if tuple(weight.shape) != expected:
            raise InputError(
                f"the target's embeddings have shape {tuple(weight.shape)} but the drafter expects {expected}: pass "
                "the target this drafter was trained for."
            )
        return weight.to(dtype).contiguous()

    weights_dtype = state["fc.weight"].dtype
    if mode == "none":
        state.pop("embed_tokens.weight", None)
    elif mode == "target":
        state["embed_tokens.weight"] = from_target(weights_dtype)
    elif mode == "source":
        if "embed_tokens.weight" not in state:
            raise InputError("--embeddings source, but the source checkpoint has no embed_tokens.weight.")
    elif "embed_tokens.weight" in state:
        if get_embeddings is not None and not getattr(ckpt.config, "embed_requires_grad", False):
            # In the source's dtype: SpecForge's fp32 runs export bf16 embeddings equal to a bf16 target's.
            own = state["embed_tokens.weight"]
            reference = from_target(own.dtype)
            if not torch.equal(own, reference):
                gap = (own.float() - reference.float()).abs().max().item()
                raise InputError(
                    f"the source's embed_tokens differ from the target's (max |diff| = {gap:.3g} in {own.dtype}): they "
                    "are random or from another model. Rerun with --embeddings target to replace them with the "
                    "target's, or --embeddings source to keep them (drafters trained with unfrozen embeddings)."
                )
    elif get_embeddings is not None:
        state["embed_tokens.weight"] = from_target(weights_dtype)
    elif to != "speculators":
        logger.info("no embeddings in the source: writing none; %s loads the target's at load time.", to)
    if to == "speculators" and "embed_tokens.weight" not in state:
        if not allow_missing_embeddings:
            raise InputError(
                "a speculators checkpoint without embed_tokens.weight loads with zero embeddings in speculators 0.9.0 "
                "(drafts garbage): pass --target (the target's directory or Hub id) to write the target's, or "
                "--allow-missing-embeddings if only vLLM will load it."
            )
        logger.warning(
            "writing a speculators checkpoint without embeddings (--allow-missing-embeddings): vLLM takes the "
            "target's; speculators 0.9.0 loads zeros and drafts garbage."
        )
    return replace(ckpt, state_dict=state)


# ---------------------------------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------------------------------


def write_checkpoint(
    ckpt: DrafterCheckpoint, path, to: str, num_speculative_tokens=None, model_card=None, eagle_consumer=None
) -> Path:
    """Writes `ckpt` as a `to`-format directory (created; must be empty or absent). Returns the directory.

    eagle_consumer: who loads a `to="eagle"` export of a drafter with switches on (`EAGLE_CONSUMERS`): "specforge"
        (SpecForge / SGLang / vLLM read the switches) writes it; otherwise it is refused, as SafeAILab EAGLE would
        drop fc_norm and run plain EAGLE-3.
    """
    if to not in FORMATS:
        raise InputError(f"unknown format {to!r}: use one of {list(FORMATS)}.")
    directory = Path(path)
    if directory.exists() and any(directory.iterdir()):
        raise InputError(f"{directory} exists and is not empty: choose a new DST or pass --overwrite.")
    with write_errors_name(directory):
        directory.mkdir(parents=True, exist_ok=True)
        return _write_checkpoint_files(ckpt, directory, to, num_speculative_tokens, model_card, eagle_consumer)


def _write_checkpoint_files(ckpt, directory, to, num_speculative_tokens, model_card, eagle_consumer) -> Path:
    cfg = ckpt.config
    if to == "hf-eagle31":
        native.write(ckpt, directory, model_card=model_card)
        return directory
    if to == "eagle":
        state, config = eagle.write(ckpt, consumer=eagle_consumer)
    else:
        ckpt = ascending(ckpt, to)
        if cfg.target_num_hidden_layers is not None and cfg.target_num_hidden_layers in ckpt.config.target_layer_ids:
            logger.warning(
                "aux layer %d is the last hidden state: transformers returns it after the final norm, vLLM/SGLang "
                "before it; this drafter sees different features there.",
                cfg.target_num_hidden_layers,
            )
        state = dict(ckpt.state_dict)
        if to == "speculators":
            state, config = speculators.write(ckpt, num_speculative_tokens)
        else:
            config = vllm.write_config(ckpt)
    write_safetensors(state, directory)
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
    norm_output_semantics=None,
    eagle_consumer=None,
    allow_missing_embeddings=False,
) -> DrafterCheckpoint:
    """Reads `src` (any format, detected), settles its embeddings, writes `dst` as `to`. Returns what was written."""
    target_path = target
    if Path(src, "config.json").is_file():  # a newer drafter variant is not a foreign format to convert
        check_known_drafter_type(json.loads(Path(src, "config.json").read_text()), src, remote_code=False)
    target = load_target_parts(target) if target is not None else None
    ckpt = read_checkpoint(
        src,
        source_format,
        target_config=target.config if target else None,
        target_layer_ids=target_layer_ids,
        embeddings_from_target=target is not None,
        norm_output_semantics=norm_output_semantics,
    )
    ckpt = settle_embeddings(
        ckpt, to, target=target, mode=embeddings, allow_missing_embeddings=allow_missing_embeddings
    )
    # Written into a temporary sibling and renamed into place when complete; --overwrite replaces only a drafter
    # folder of ours, never one that is or holds the source (utils/io.py).
    with (
        output_lock(dst),
        atomic_directory(dst, overwrite, sources=[src, target_path], is_ours=is_drafter_dir, what="drafter") as tmp,
    ):
        write_checkpoint(
            ckpt,
            tmp,
            to,
            num_speculative_tokens=num_speculative_tokens,
            model_card=model_card,
            eagle_consumer=eagle_consumer,
        )
    return ckpt
