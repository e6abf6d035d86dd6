# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Configuration of the EAGLE-3 / EAGLE-3.1 drafter."""

from transformers import PretrainedConfig

from .configuration_common import DrafterConfig, check_variant, default_target_layer_ids


class Eagle3Config(DrafterConfig):
    r"""
    Configuration of [`Eagle3Drafter`]: decoder layers (one by default) fed with three captured hidden states of the
    target.

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
            embeddings. This is the EAGLE / vLLM convention; default `[2, L//2, L-3]` (three distinct taps for toy
            targets of L <= 6 layers). Distinct non-negative ints.
        target_num_hidden_layers (`int`, *optional*): number of target decoder layers, checked before decoding.
        num_hidden_layers (`int`): the drafter's own depth (default 1, the published EAGLE-3 layout; never copied
            from the target). The first layer reads the 2H-wide (token embedding ‖ hidden state) input; layers
            1..n-1 are standard pre-norm decoder layers on the H-wide stream, each with its own cache slot
            (`layer_idx`). The final norm, `lm_head` and the state fed to the next chain step follow the last layer.
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
    num_target_hidden_states = 3
    default_layer_ids = staticmethod(default_target_layer_ids)

    def __init__(
        self, fc_norm: bool = False, norm_before_fc: bool = False, norm_before_residual: bool = False, **kwargs
    ):
        if fc_norm and norm_before_fc:
            raise ValueError(
                "`fc_norm` (one RMSNorm per captured state, EAGLE-3.1) and `norm_before_fc` (one RMSNorm over the "
                "concatenation) are mutually exclusive: set only one of them."
            )
        self.fc_norm = bool(fc_norm)
        self.norm_before_fc = bool(norm_before_fc)
        self.norm_before_residual = bool(norm_before_residual)
        super().__init__(**kwargs)

    @classmethod
    def from_target(
        cls,
        target_config: PretrainedConfig | dict,
        variant: str = "eagle3.1",
        draft_vocab_size: int | None = None,
        **overrides,
    ) -> "Eagle3Config":
        """
        Builds a drafter config sized for `target_config` (a transformers config or dict of a Llama-, Qwen2-, ...
        family decoder). `variant="eagle3"` is the pre-norm baseline, `"eagle3.1"` turns on `fc_norm` and
        `norm_output`. Any field can be overridden by keyword.
        """
        kwargs = cls.target_kwargs(target_config, draft_vocab_size, overrides)
        kwargs.update(check_variant(variant))
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["Eagle3Config"]
