# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
EAGLE-3 / EAGLE-3.1 drafter (remote code: `AutoModel.from_pretrained(dir, trust_remote_code=True)`).

    g_t = concat(h_a, h_b, h_c)                       three captured target states (B, T, 3H')
    EAGLE-3.1 `fc_norm`:  g_t = concat(RMSNorm_a(h_a), RMSNorm_b(h_b), RMSNorm_c(h_c))
    u_t = fc(g_t)                                     (B, T, H)
    x   = concat(input_layernorm(embed(tok)), hidden_norm(u))   (B, T, 2H) -> attention -> MLP -> a_t
    num_hidden_layers > 1: a_t -> n-1 standard pre-norm decoder layers (H-wide) -> a_t
    logits = lm_head(norm(a_t))                       draft vocabulary (B, T, D)
    next chain step gets a_t (EAGLE-3) or norm(a_t) (EAGLE-3.1 `norm_output`)
"""

import torch
from torch import nn

from .configuration_eagle3 import Eagle3Config
from .drafter_common import (
    DrafterAttention,
    DrafterDecoderLayer,
    DrafterMLP,
    DrafterPreTrainedModel,
    DrafterRMSNorm,
)


class Eagle3DecoderLayer(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.norm_before_residual = config.norm_before_residual
        self.self_attn = DrafterAttention(config, input_size=2 * config.hidden_size, layer_idx=layer_idx)
        self.mlp = DrafterMLP(config)
        self.input_layernorm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.hidden_norm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, embeds, hidden, cos, sin, cache=None, ttt_kv=None, output_attentions=False, attention_mask=None):
        normed_hidden = self.hidden_norm(hidden)
        residual = normed_hidden if self.norm_before_residual else hidden
        x = torch.cat([self.input_layernorm(embeds), normed_hidden], dim=-1)  # (B, T, 2H)
        attn, weights = self.self_attn(x, cos, sin, cache, ttt_kv, output_attentions, attention_mask)
        hidden = residual + attn
        hidden = hidden + self.mlp(self.post_attention_layernorm(hidden))
        return hidden, weights  # a_t, pre-norm


class Eagle3Drafter(DrafterPreTrainedModel):
    config_class = Eagle3Config
    _no_split_modules = ["Eagle3DecoderLayer", "DrafterDecoderLayer"]

    def __init__(self, config: Eagle3Config):
        super().__init__(config)
        self._build_common(config)
        width = config.target_hidden_size
        if config.fc_norm:
            self.fc_norm = nn.ModuleList(DrafterRMSNorm(width, eps=config.rms_norm_eps) for _ in range(3))
        if config.norm_before_fc:
            self.input_norm = DrafterRMSNorm(3 * width, eps=config.rms_norm_eps)
        self.fc = nn.Linear(3 * width, config.hidden_size, bias=False)
        # The first layer reads the token and the hidden input; the others are plain pre-norm layers on the stream.
        later = (DrafterDecoderLayer(config, i) for i in range(1, config.num_hidden_layers))
        self.layers = nn.ModuleList([Eagle3DecoderLayer(config, 0), *later])
        self.post_init()

    def project_target_hidden_states(
        self, target_hidden_states: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """(B, T, 3H') or a list of three (B, T, H') captured states -> u = fc(g) (B, T, H)."""
        if isinstance(target_hidden_states, (list, tuple)):
            parts = list(target_hidden_states)
        else:
            parts = list(target_hidden_states.chunk(3, dim=-1))
        width = self.config.target_hidden_size
        if len(parts) != 3 or any(p.shape[-1] != width for p in parts):
            raise ValueError(
                f"expected 3 target hidden states of width target_hidden_size={width}, got widths "
                f"{[p.shape[-1] for p in parts]}: capture `hidden_states[i] for i in config.target_layer_ids`."
            )
        dtype = self.fc.weight.dtype
        parts = [p.to(dtype) for p in parts]
        if self.config.fc_norm:
            parts = [norm(p) for norm, p in zip(self.fc_norm, parts)]
        g = torch.cat(parts, dim=-1)  # (B, T, 3H')
        if self.config.norm_before_fc:
            g = self.input_norm(g)
        return self.fc(g)


Eagle3Config.register_for_auto_class()
Eagle3Drafter.register_for_auto_class("AutoModel")

__all__ = ["Eagle3Drafter", "Eagle3DecoderLayer"]
