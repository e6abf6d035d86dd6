# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Loading drafters for inference: `load_drafter(name_or_path, target)` (a checkpoint checked against the target, on its
device, with its embeddings) and `load_drafter_checkpoint` (the raw checkpoint, hf-eagle31 or trust-remote-code),
plus the drafters shipped inside the package (`SHIPPED_DRAFTERS`, `DEFAULT_DRAFTER`: `hf-eagle31 demo`'s default).

Nothing here imports the Trainer: loading a drafter costs what `from_pretrained` costs.
"""

import os
from pathlib import Path

import torch
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

from .convert.checkpoint import check_known_drafter_type
from .errors import InputError, modeling_checks_are_input_errors
from .modeling import DRAFTER_CLASSES, Eagle3Config
from .modeling.checkpoint_formats import is_foreign_config
from .modeling.configuration_common import FOREIGN_FORMAT_KEYS, check_checkpoint_config
from .modeling.drafter_common import check_finite_weights


SHIPPED_DRAFTERS = Path(__file__).resolve().parent / "drafters"
DEFAULT_DRAFTER = SHIPPED_DRAFTERS / "smollm2-135m-instruct-eagle3.1"


@modeling_checks_are_input_errors()
def load_drafter_checkpoint(
    name_or_path: str | os.PathLike,
    trust_remote_code: bool = False,
    target=None,
    norm_output_semantics: str | None = None,
    **kwargs,
) -> PreTrainedModel | tuple[PreTrainedModel, dict]:
    """
    A drafter checkpoint (directory or Hub id). hf-eagle31 checkpoints (a `model_type` of the variant registry:
    `modeling.DRAFTER_CLASSES`) load with this package's classes, no remote code; EAGLE / SpecForge / vLLM /
    speculators drafters are converted in memory with `hf-eagle31 convert`'s rules (`convert.load_foreign_drafter`:
    `target` supplies the layer count EAGLE implies and the embeddings, checked as `convert --target` checks them;
    `norm_output_semantics` as `--norm-output-semantics`); any other checkpoint runs its own code only with
    `trust_remote_code=True` (as transformers). `kwargs` go to `from_pretrained` (dtype, ...; with
    `output_loading_info=True` the result is `(drafter, loading_info)`, as there).
    """
    try:
        config, _ = PretrainedConfig.get_config_dict(str(name_or_path))
    except OSError as error:
        raise InputError(f"{name_or_path} is not a drafter checkpoint (no readable config.json): {error}") from None
    model_type = config.get("model_type")
    foreign_drafter = check_drafter_config(config, name_or_path, trust_remote_code)
    if foreign_drafter:
        # an EAGLE / SpecForge / vLLM / speculators drafter (no code of its own to trust): converted in memory
        from .convert.checkpoint import load_foreign_drafter

        want_info = kwargs.pop("output_loading_info", False)
        drafter = load_foreign_drafter(
            name_or_path, target=target, dtype=kwargs.pop("dtype", None), norm_output_semantics=norm_output_semantics
        )
        if kwargs:
            raise InputError(f"{name_or_path} is converted in memory, where {sorted(kwargs)} do not apply.")
        info = {"missing_keys": [] if drafter.embeddings_ready else ["embed_tokens.weight"], "unexpected_keys": []}
        return (drafter, info) if want_info else drafter
    if model_type in DRAFTER_CLASSES:  # (their from_pretrained already names the checkpoint on unreadable weights)
        loaded = DRAFTER_CLASSES[model_type].from_pretrained(name_or_path, **kwargs)
    else:
        try:
            loaded = AutoModel.from_pretrained(name_or_path, trust_remote_code=True, **kwargs)
        except Exception as error:  # safetensors' "incomplete metadata" and friends name no file: add the checkpoint
            if type(error).__name__ == "SafetensorError":
                raise InputError(
                    f"{name_or_path}: unreadable weights ({error}): the file is truncated or corrupt; "
                    "copy or save the checkpoint again."
                ) from error
            raise
        # Our drafters' `from_pretrained` refuses NaN / inf weights itself; other drafters' remote code gets the same
        # check here (the decorator turns its ValueError into the one-line InputError).
        check_finite_weights(loaded[0] if isinstance(loaded, tuple) else loaded, name_or_path)
    return loaded


@modeling_checks_are_input_errors()
def check_drafter_config(config: dict, name_or_path, trust_remote_code: bool = False) -> bool:
    """
    What `load_drafter_checkpoint` refuses from the checkpoint's config.json alone, before any weight is read (the
    CLI runs it before loading the target): a drafter type this release does not know, no config, a model that is
    not a drafter, a checkpoint with code of its own without `trust_remote_code`. Returns whether it is an EAGLE /
    SpecForge / vLLM / speculators drafter (converted in memory).
    """
    model_type = config.get("model_type")
    check_known_drafter_type(config, name_or_path, trust_remote_code)
    if not config:
        check_checkpoint_config(Eagle3Config, config, name_or_path)
    remote = trust_remote_code and "auto_map" in config
    foreign_drafter = model_type not in DRAFTER_CLASSES and (
        any(k in config for k in FOREIGN_FORMAT_KEYS) or is_foreign_config(config)
    )
    if foreign_drafter and not remote:
        return True
    if model_type in DRAFTER_CLASSES or remote:
        return False
    if "auto_map" in config:
        raise InputError(
            f"{name_or_path} is a `{model_type}` checkpoint with its own code, not an hf-eagle31 drafter: pass "
            "--trust-remote-code to run that code."
        )
    # --trust-remote-code cannot help: transformers would build a plain `model_type` model, never a drafter
    raise InputError(
        f"{name_or_path} is a `{model_type or 'config-less'}` model, not a drafter checkpoint: pass a drafter folder "
        "(EAGLE / SpecForge / vLLM / speculators drafters load as they are)."
    )


@modeling_checks_are_input_errors()
def load_drafter(
    name_or_path: str | os.PathLike,
    target: PreTrainedModel,
    trust_remote_code: bool = False,
    dtype: torch.dtype | None = None,
    norm_output_semantics: str | None = None,
) -> PreTrainedModel:
    """
    A drafter checkpoint (local folder or Hub id) in `dtype` (default: the target's) on the target's device, checked
    against the target
    (`check_target` raises a one-line ValueError on a mismatch) and with the target's embeddings when the checkpoint
    did not carry them. hf-eagle31 checkpoints load with this package's classes; any other checkpoint runs its own
    code only with `trust_remote_code` (`training.load_drafter_checkpoint`); EAGLE / SpecForge / vLLM / speculators
    drafters are converted in memory with `hf-eagle31 convert`'s rules (the target gives the layer count and the
    embeddings, checked as `convert --target` checks them).
    """
    drafter, info = load_drafter_checkpoint(
        name_or_path,
        trust_remote_code=trust_remote_code,
        target=target,
        norm_output_semantics=norm_output_semantics,
        dtype=dtype or target.dtype,
        output_loading_info=True,
    )
    # Embeddings may be absent (they are the target's, loaded below); any other missing weight is an error.
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("embed_tokens.weight")]
    if missing:
        raise InputError(
            f"{name_or_path} lacks weights {sorted(missing)[:5]}: the checkpoint is incomplete; re-export or "
            "convert it "
            "(`hf-eagle31 convert`)."
        )
    if not hasattr(drafter, "check_target"):
        raise InputError(f"{name_or_path} is a {type(drafter).__name__}, not an hf-eagle31 drafter checkpoint.")
    try:
        drafter.check_target(target.config)
    except ValueError as error:
        raise InputError(f"{name_or_path}: {error}") from None
    drafter.to(target.device).eval()
    if not drafter.embeddings_ready:
        drafter.load_target_embeddings(target)
    return drafter


def load_drafters(
    names: list[str],
    target: PreTrainedModel,
    trust_remote_code: bool = False,
    dtype: torch.dtype | None = None,
    norm_output_semantics: str | None = None,
) -> dict[str, PreTrainedModel]:
    """`{name as given: drafter}`; the same checkpoint given twice is loaded twice under distinct labels."""
    drafters = {}
    for name in names:
        label = name if name not in drafters else f"{name}#{len(drafters)}"
        drafters[label] = load_drafter(
            name, target, trust_remote_code=trust_remote_code, dtype=dtype, norm_output_semantics=norm_output_semantics
        )
    return drafters


def check_drafters_fit(target: PreTrainedModel, drafters: dict) -> None:
    """Each drafter of `{label: drafter}` checked against `target` (`drafter.check_target`): a mismatch is an
    `InputError` that starts with the drafter's label."""
    for label, drafter in drafters.items():
        try:
            drafter.check_target(target.config)
        except ValueError as error:
            raise InputError(f"{label}: {error}") from None


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 matmuls run natively here (a CUDA device, or a CPU with AVX512-BF16 / AMX)."""
    if str(device).startswith("cuda"):
        return True
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
