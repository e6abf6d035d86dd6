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
from ..modeling import DRAFTER_CLASSES, Eagle3Drafter
from ..modeling import checkpoint_formats as formats
from ..modeling.configuration_common import FOREIGN_FORMAT_KEYS
from ..modeling.drafter_common import check_finite_weights
from ..targets import load_target
from ..utils import text_config
from ..utils.io import atomic_directory, is_drafter_dir, output_lock, write_errors_name
from . import eagle, native, speculators, vllm
from .neutral import EMBEDDING_MODES, FORMATS, NORM_OUTPUT_SEMANTICS, DrafterCheckpoint, ascending, write_safetensors


logger = logging.get_logger(__name__)  # `hf-eagle31 convert` shows its INFO notes (cli_utils.package_log_messages)


# ---------------------------------------------------------------------------------------------------------------------
# format detection and reading: the rules are `modeling/checkpoint_formats.py`'s (shared with from_pretrained)
# ---------------------------------------------------------------------------------------------------------------------


@modeling_checks_are_input_errors()
def detect_format(path) -> str:
    """One of `FORMATS` for a checkpoint directory (or Hub id), from its config.json (and weight names: EAGLE vs
    vLLM)."""
    config = formats.read_config_file(path)
    eagle_or_vllm = formats.is_foreign_config(config) and "speculators_model_type" not in config
    return formats.detect_format(config, formats.read_weights(path).keys() if eagle_or_vllm else (), path)


@modeling_checks_are_input_errors()
def read_checkpoint(
    path,
    format=None,
    target_config=None,
    target_layer_ids=None,
    embeddings_from_target=False,
    norm_output_semantics=None,
    ignore_config_keys=None,
) -> DrafterCheckpoint:
    """
    Reads a drafter checkpoint directory (or Hub id, resolved as transformers resolves it) of any supported format
    into a [`DrafterCheckpoint`], with the rules `Eagle3Drafter.from_pretrained` applies to the same files.

    target_config: the target's config; gives the layer count when the checkpoint implies its aux layers (EAGLE) and
        is checked against the drafter's sizes.
    target_layer_ids: overrides the aux layers, as indices into the target's HF `hidden_states`.
    embeddings_from_target: accept an hf-eagle31 checkpoint that declares embeddings but lost them (they will be
        taken from the target by [`settle_embeddings`]).
    norm_output_semantics: what `norm_output: true` means in a `midlayer` (SpecForge) checkpoint that does not record
        it (`NORM_OUTPUT_SEMANTICS`: "post-norm-feed" = SpecForge from PR #879, vLLM, SGLang; "pre-norm-feed" =
        SpecForge before #879, read as norm_output=False). Such a checkpoint without it is refused.
    ignore_config_keys: config keys the user knows not to change the model (--ignore-config-key), read as if absent.
    """
    if norm_output_semantics is not None and norm_output_semantics not in NORM_OUTPUT_SEMANTICS:
        raise InputError(
            f"unknown norm_output meaning {norm_output_semantics!r}: use one of {list(NORM_OUTPUT_SEMANTICS)}."
        )
    config = formats.read_config_file(path)
    weights = formats.read_weights(path)
    fmt = format or formats.detect_format(config, weights.keys(), path)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: use one of {list(FORMATS)}.")
    if fmt == "hf-eagle31":
        if ignore_config_keys:
            raise InputError(
                "--ignore-config-key applies to EAGLE / vLLM / speculators checkpoints; an hf-eagle31 config with a "
                "key this release does not know comes from a newer release: upgrade hf-eagle31."
            )
        ckpt = native.read(path, config, weights, target_layer_ids, embeddings_from_target)
        return formats.finish(ckpt, Eagle3Drafter, target_config)
    where = Path(path, "config.json")
    return formats.read_foreign(
        where, config, weights, fmt, Eagle3Drafter, target_config, target_layer_ids, norm_output_semantics,
        ignore_config_keys,
    )  # fmt: skip


def check_known_drafter_type(config: dict, name_or_path, trust_remote_code: bool = False, remote_code=True) -> None:
    """Refuses a drafter `model_type` this release does not know (a newer variant: `*_drafter`) instead of taking
    it for a foreign format to convert, which would silently make a different model. `remote_code`: whether the
    caller can run the checkpoint's own code (`convert` cannot: it reads weights with this release's layouts)."""
    model_type = config.get("model_type")
    if (
        isinstance(model_type, str)
        and model_type.endswith("_drafter")
        and model_type not in DRAFTER_CLASSES
        and not any(k in config for k in FOREIGN_FORMAT_KEYS)
        and not (trust_remote_code and "auto_map" in config)
    ):
        fix = (
            ", or pass --trust-remote-code to run the checkpoint's own code"
            if remote_code and "auto_map" in config
            else " to load or convert it"
        )
        raise InputError(
            f"{name_or_path} is a `{model_type}` drafter, which this hf-eagle31 release does not know (known: "
            f"{', '.join(sorted(DRAFTER_CLASSES))}): upgrade hf-eagle31{fix}."
        )


@modeling_checks_are_input_errors()
def load_foreign_drafter(
    name_or_path,
    target=None,
    dtype="auto",
    norm_output_semantics=None,
    source_format=None,
    ignore_config_keys=None,
    target_layer_ids=None,
) -> Eagle3Drafter:
    """
    An EAGLE / SpecForge / vLLM / speculators checkpoint (directory or Hub id) as an `Eagle3Drafter`, converted in
    memory: exactly what `convert SRC DST --to hf-eagle31 [--target T]` writes, loaded (the same refusals, the target's
    embeddings filled in or checked, the same tensors; `dtype` as `from_pretrained` takes it). The command-line
    `--drafter` of every command loads foreign layouts this way (`loading.load_drafter_checkpoint`).
    """
    target = load_target_parts(target) if target is not None else None
    ckpt = read_checkpoint(
        name_or_path,
        source_format,
        target_config=target.config if target else None,
        target_layer_ids=target_layer_ids,
        norm_output_semantics=norm_output_semantics,
        ignore_config_keys=ignore_config_keys,
    )
    ckpt = settle_embeddings(ckpt, "hf-eagle31", target=target)
    drafter = formats.drafter_from_checkpoint(ckpt, Eagle3Drafter, dtype=dtype or "auto")
    drafter.config._name_or_path = str(name_or_path)
    check_finite_weights(drafter, name_or_path, [] if ckpt.has_embeddings else ["embed_tokens.weight"])
    return drafter


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
        formats.check_against_target(ckpt.config, source.config)
        formats.record_target_layer_count(ckpt.config, source.config)
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
    ignore_config_keys=None,
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
        ignore_config_keys=ignore_config_keys,
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
