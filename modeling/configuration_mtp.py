# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Configuration of the DeepSeek-V3-style MTP drafter head."""

from transformers import PretrainedConfig

from .configuration_common import VARIANTS, DrafterConfig


# variant -> norm_output, read from the registry in configuration_common.py
MTP_VARIANTS = {n: v.switches["norm_output"] for n, v in VARIANTS.items() if v.model_type == "mtp_drafter"}


class MtpConfig(DrafterConfig):
    r"""
    Configuration of [`MtpDrafter`]: `u = eh_proj(enorm(embed(token)) ‖ hnorm(h))` followed by one full decoder
    block, as DeepSeek-V3's multi-token-prediction module, with its own (draft-vocabulary) head.

    Args:
        vocab_size, draft_vocab_size, hidden_size, intermediate_size, num_attention_heads, num_key_value_heads,
        head_dim, hidden_act, rms_norm_eps, max_position_embeddings, rope_parameters, attention_bias,
        embeddings_in_checkpoint, initializer_range: as in [`Eagle3Config`].
        num_hidden_layers (`int`): the drafter's depth (default 1): the MTP block, then n-1 standard pre-norm decoder
            layers.
        target_layer_ids (`list[int]`): one index into the target's `hidden_states`; default `[L]`, the last entry
            (for Llama-family models transformers returns it after the final norm).
        target_num_hidden_layers (`int`, *optional*): number of target decoder layers, checked before decoding.
        norm_output (`bool`): the next chain step receives `norm(a)` (post-norm, drift-free) instead of `a`.
    """

    model_type = "mtp_drafter"
    num_target_hidden_states = 1

    @staticmethod
    def default_layer_ids(num_hidden_layers: int) -> list[int]:
        return [num_hidden_layers]

    def __init__(self, **kwargs):
        # The MTP chain feeds its own H-wide states where the target's go, so the target width must equal H
        # (the base class sets target_hidden_size = hidden_size when none is given).
        kwargs.pop("target_hidden_size", None)
        super().__init__(**kwargs)

    # Adapted from configuration_eagle3.Eagle3Config.from_target with Eagle3->Mtp (the MTP variants' one switch).
    @classmethod
    def from_target(
        cls,
        target_config: PretrainedConfig | dict,
        variant: str = "mtp",
        draft_vocab_size: int | None = None,
        **overrides,
    ) -> "MtpConfig":
        """Builds an MTP head sized for `target_config`; `variant="mtp-postnorm"` turns on `norm_output`."""
        if variant not in MTP_VARIANTS:
            raise ValueError(f"unknown MTP variant {variant!r}: use one of {sorted(MTP_VARIANTS)}.")
        kwargs = cls.target_kwargs(target_config, draft_vocab_size, overrides)
        kwargs["norm_output"] = MTP_VARIANTS[variant]
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["MtpConfig"]
