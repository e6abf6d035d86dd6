# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""The drafter a run trains: a fresh one for a target (`build_drafter`, `build_drafter_config`), and the drafter
found inside the wrappers training puts around it (`unwrap_drafter`: DDP, FSDP, DeepSpeed, PEFT)."""

import torch
from transformers import PretrainedConfig, PreTrainedModel

from ..errors import InputError, modeling_checks_are_input_errors
from ..modeling import VARIANTS, variant_classes
from ..modeling.drafter_common import DrafterPreTrainedModel


def unwrap_drafter(model: torch.nn.Module) -> PreTrainedModel:
    """The `DrafterPreTrainedModel` inside DDP / FSDP / DeepSpeed / PEFT wrappers."""
    seen = model
    for _ in range(8):
        if isinstance(seen, DrafterPreTrainedModel) or _is_remote_code_drafter(seen):
            return seen
        if hasattr(seen, "get_base_model"):
            seen = seen.get_base_model()
        elif hasattr(seen, "module"):
            seen = seen.module
        else:
            break
    raise InputError(f"{type(model).__name__} does not wrap an hf-eagle31 drafter: pass an Eagle3Drafter / MtpDrafter.")


def _is_remote_code_drafter(model):
    """A drafter loaded with `trust_remote_code` is an instance of the checkpoint's copy of the classes, not ours."""
    return any(cls.__name__ == "DrafterPreTrainedModel" for cls in type(model).__mro__) and hasattr(
        model, "ttt_forward"
    )


def build_drafter(
    target_config: PretrainedConfig, variant: str = "eagle3.1", draft_vocab_size: int | None = None, **overrides
) -> DrafterPreTrainedModel:
    """A fresh drafter for `target_config`: variant in eagle3, eagle3.1 (EAGLE), mtp, mtp-postnorm (MTP head)."""
    config = build_drafter_config(target_config, variant, draft_vocab_size, **overrides)
    return variant_classes(variant)[1](config)


@modeling_checks_are_input_errors()
def build_drafter_config(
    target_config: PretrainedConfig, variant: str = "eagle3.1", draft_vocab_size: int | None = None, **overrides
) -> PretrainedConfig:
    """The drafter config of `build_drafter`."""
    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}.")
    cls = variant_classes(variant)[0]
    return cls.from_target(target_config, variant=variant, draft_vocab_size=draft_vocab_size, **overrides)
