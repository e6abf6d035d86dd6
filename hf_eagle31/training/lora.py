# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""LoRA adapters on a trained drafter (peft, imported on use): adapt it to a new chat template or system prompt
without touching its weights, then save the adapter, or fold it in."""

from typing import TYPE_CHECKING

from transformers import PreTrainedModel

from .drafter import unwrap_drafter


if TYPE_CHECKING:  # annotations only
    from peft import PeftModel


def apply_lora(
    drafter: PreTrainedModel, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: list[str] | None = None
) -> "PeftModel":
    """
    Wraps a (trained) drafter with LoRA adapters (peft), e.g. to adapt it to a new chat template or system prompt
    without touching the base weights. Default targets: attention and MLP projections and `fc` / `eh_proj`.
    Train the result with `EagleTrainer` as usual; `trainer.save_model()` then writes the adapter only.
    """
    from peft import LoraConfig, get_peft_model  # on use: only LoRA training needs peft

    if target_modules is None:
        names = {name.rsplit(".", 1)[-1] for name, _ in drafter.named_modules()}
        target_modules = sorted(
            names & {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc", "eh_proj"}
        )
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, bias="none")
    return get_peft_model(drafter, config)


def load_lora(drafter: PreTrainedModel, adapter_dir: str, is_trainable: bool = False) -> "PeftModel":
    """Attaches a saved LoRA adapter to `drafter` (a PeftModel)."""
    from peft import PeftModel  # on use (see apply_lora)

    return PeftModel.from_pretrained(drafter, adapter_dir, is_trainable=is_trainable)


def merge_lora(peft_model: "PeftModel") -> PreTrainedModel:
    """Folds the adapter into the base weights and returns a plain drafter that saves and loads like any other."""
    merged = peft_model.merge_and_unload()
    unwrap_drafter(merged)  # type check
    return merged
