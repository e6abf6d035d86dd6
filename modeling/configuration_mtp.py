# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Configuration of the DeepSeek-V3-style MTP drafter head."""

from transformers import PretrainedConfig

from .configuration_common import read_target_config, validate_target_layer_ids


MTP_VARIANTS = {"mtp": False, "mtp-postnorm": True}  # variant -> norm_output


class MtpConfig(PretrainedConfig):
    r"""
    Configuration of [`MtpDrafter`]: `u = eh_proj(enorm(embed(token)) ‖ hnorm(h))` followed by one full decoder
    block, as DeepSeek-V3's multi-token-prediction module, with its own (draft-vocabulary) head.

    Args:
        vocab_size, draft_vocab_size, hidden_size, intermediate_size, num_attention_heads, num_key_value_heads,
        head_dim, hidden_act, rms_norm_eps, max_position_embeddings, rope_parameters, attention_bias,
        embeddings_in_checkpoint, initializer_range: as in [`Eagle3Config`].
        target_layer_ids (`list[int]`): one index into the target's `hidden_states`; default `[L]`, the last entry
            (for Llama-family models transformers returns it after the final norm).
        target_num_hidden_layers (`int`, *optional*): number of target decoder layers, checked before decoding.
        norm_output (`bool`): the next chain step receives `norm(a)` (post-norm, drift-free) instead of `a`.
    """

    model_type = "mtp_drafter"
    keys_to_ignore_at_inference = ["past_key_values"]
    num_target_hidden_states = 1

    def __init__(
        self,
        vocab_size=32000,
        draft_vocab_size=None,
        hidden_size=4096,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=None,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        max_position_embeddings=8192,
        rope_parameters=None,
        attention_bias=False,
        target_layer_ids=None,
        target_num_hidden_layers=None,
        norm_output=False,
        embeddings_in_checkpoint=True,
        initializer_range=0.02,
        tie_word_embeddings=False,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.draft_vocab_size = draft_vocab_size if draft_vocab_size is not None else vocab_size
        if self.draft_vocab_size > vocab_size:
            raise ValueError(
                f"draft_vocab_size={self.draft_vocab_size} exceeds vocab_size={vocab_size}: the draft vocabulary is a "
                "subset of the target's, so choose draft_vocab_size <= vocab_size."
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
        # The MTP chain feeds its own H-wide states where the target's go, so the target width must equal H.
        self.target_hidden_size = hidden_size
        self.target_num_hidden_layers = target_num_hidden_layers
        if target_layer_ids is None and target_num_hidden_layers is not None:
            target_layer_ids = [target_num_hidden_layers]
        if target_layer_ids is not None:
            target_layer_ids = validate_target_layer_ids(
                target_layer_ids, target_num_hidden_layers, self.num_target_hidden_states
            )
        self.target_layer_ids = target_layer_ids
        self.norm_output = bool(norm_output)
        self.embeddings_in_checkpoint = bool(embeddings_in_checkpoint)
        self.initializer_range = initializer_range
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @classmethod
    def from_target(cls, target_config, variant="mtp", draft_vocab_size=None, **overrides):
        """Builds an MTP head sized for `target_config`; `variant="mtp-postnorm"` turns on `norm_output`."""
        if variant not in MTP_VARIANTS:
            raise ValueError(f"unknown MTP variant {variant!r}: use one of {sorted(MTP_VARIANTS)}.")
        target = read_target_config(target_config)
        kwargs = dict(
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
            target_num_hidden_layers=target["num_hidden_layers"],
            norm_output=MTP_VARIANTS[variant],
            bos_token_id=target["bos_token_id"],
            eos_token_id=target["eos_token_id"],
            pad_token_id=target["pad_token_id"],
            target_model_type=target["model_type"],
        )
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["MtpConfig"]
