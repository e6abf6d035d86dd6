# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Configuration of the EAGLE-3 / EAGLE-3.1 drafter."""

from transformers import PretrainedConfig

from .configuration_common import (
    check_variant,
    default_target_layer_ids,
    read_target_config,
    validate_target_layer_ids,
)


class Eagle3Config(PretrainedConfig):
    r"""
    Configuration of [`Eagle3Drafter`]: one decoder layer fed with three captured hidden states of the target.

    With all switches off this is the EAGLE-3 drafter (pre-norm residual path); `fc_norm=True, norm_output=True`
    is EAGLE-3.1. The switch names are the ones vLLM, SGLang and speculators read.

    Args:
        vocab_size (`int`): the *target's* vocabulary size (input embeddings are the target's).
        draft_vocab_size (`int`, *optional*): size D of the drafter's output vocabulary (`lm_head` rows). Draft id `i`
            maps to target id `i + d2t[i]`. Defaults to `vocab_size` (identity mapping).
        hidden_size (`int`): drafter width H; equal to the target's hidden size so the target's embeddings fit.
        intermediate_size (`int`): MLP width.
        num_attention_heads (`int`), num_key_value_heads (`int`), head_dim (`int`): attention shape; q/k/v read a
            2H-wide input (token embedding ‖ hidden state).
        hidden_act (`str`): MLP activation.
        rms_norm_eps (`float`): epsilon of every RMSNorm.
        max_position_embeddings (`int`): longest context the drafter is meant for (informational; rotary has no limit).
        rope_parameters (`dict`, *optional*): transformers' rope settings (`rope_type`, `rope_theta`, scaling keys).
        attention_bias (`bool`): bias in q/k/v/o projections.
        target_hidden_size (`int`, *optional*): hidden size H' of the target's captured states (defaults to H).
        target_layer_ids (`list[int]`): the three captured states, as indices into the target's `hidden_states`
            tuple: `hidden_states[i]` is the *input* of decoder layer `i` (= output of layer `i-1`); 0 is the
            embeddings. This is the EAGLE / vLLM convention; default `[2, L//2, L-3]`.
        target_num_hidden_layers (`int`, *optional*): number of target decoder layers, checked before decoding.
        fc_norm (`bool`): EAGLE-3.1 — a separate RMSNorm on each captured hidden state before `fc`.
        norm_output (`bool`): EAGLE-3.1 — the next chain step (and TTT step) receives `norm(a)`, the post-norm
            state that feeds `lm_head`, instead of the pre-norm `a`.
        norm_before_fc (`bool`): speculators/gpt-oss style — one RMSNorm over the concatenated 3H' vector before
            `fc`. Mutually exclusive with `fc_norm`.
        norm_before_residual (`bool`): speculators option — the residual of the decoder layer is `hidden_norm(u)`
            instead of `u`.
        embeddings_in_checkpoint (`bool`): whether the saved weights carry `embed_tokens.weight`. When `False` the
            embeddings are taken from the target (`load_target_embeddings`, done automatically by `generate`).
        initializer_range (`float`): std of the normal init.
    """

    model_type = "eagle3_drafter"
    keys_to_ignore_at_inference = ["past_key_values"]
    num_target_hidden_states = 3

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
        target_hidden_size=None,
        target_layer_ids=None,
        target_num_hidden_layers=None,
        fc_norm=False,
        norm_output=False,
        norm_before_fc=False,
        norm_before_residual=False,
        embeddings_in_checkpoint=True,
        initializer_range=0.02,
        tie_word_embeddings=False,
        **kwargs,
    ):
        if fc_norm and norm_before_fc:
            raise ValueError(
                "`fc_norm` (one RMSNorm per captured state, EAGLE-3.1) and `norm_before_fc` (one RMSNorm over the "
                "concatenation) are mutually exclusive: set only one of them."
            )
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
        self.target_hidden_size = target_hidden_size if target_hidden_size is not None else hidden_size
        self.target_num_hidden_layers = target_num_hidden_layers
        if target_layer_ids is None and target_num_hidden_layers is not None:
            target_layer_ids = default_target_layer_ids(target_num_hidden_layers)
        if target_layer_ids is not None:
            target_layer_ids = validate_target_layer_ids(
                target_layer_ids, target_num_hidden_layers, self.num_target_hidden_states
            )
        self.target_layer_ids = target_layer_ids
        self.fc_norm = bool(fc_norm)
        self.norm_output = bool(norm_output)
        self.norm_before_fc = bool(norm_before_fc)
        self.norm_before_residual = bool(norm_before_residual)
        self.embeddings_in_checkpoint = bool(embeddings_in_checkpoint)
        self.initializer_range = initializer_range
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @classmethod
    def from_target(cls, target_config, variant="eagle3.1", draft_vocab_size=None, **overrides):
        """
        Builds a drafter config sized for `target_config` (a transformers config or dict of a Llama-, Qwen2-, ...
        family decoder). `variant="eagle3"` is the pre-norm baseline, `"eagle3.1"` turns on `fc_norm` and
        `norm_output`. Any field can be overridden by keyword.
        """
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
            target_hidden_size=target["hidden_size"],
            target_num_hidden_layers=target["num_hidden_layers"],
            target_layer_ids=default_target_layer_ids(target["num_hidden_layers"]),
            bos_token_id=target["bos_token_id"],
            eos_token_id=target["eos_token_id"],
            pad_token_id=target["pad_token_id"],
            target_model_type=target["model_type"],
        )
        kwargs.update(check_variant(variant))
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["Eagle3Config"]
