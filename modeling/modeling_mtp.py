# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
DeepSeek-V3-style MTP drafter head (remote code: `AutoModel.from_pretrained(dir, trust_remote_code=True)`).

    u_t = eh_proj(concat(enorm(embed(tok)), hnorm(h_t)))       h_t: target's last hidden state (B, T, H)
    a_t = decoder_block(u_t)                                    full pre-norm block, H-wide attention
    num_hidden_layers > 1: a_t -> n-1 standard pre-norm decoder layers -> a_t
    logits = lm_head(norm(a_t))                                 draft vocabulary (B, T, D)
    next chain step gets a_t (MTP) or norm(a_t) (`norm_output`, the same drift fix as EAGLE-3.1)
"""

import torch
from torch import nn

from .configuration_mtp import MtpConfig
from .drafter_common import (
    DrafterAttention,
    DrafterDecoderLayer,
    DrafterMLP,
    DrafterPreTrainedModel,
    DrafterRMSNorm,
)


# Adapted from modeling_eagle3.Eagle3DecoderLayer: eh_proj of the two normed inputs (H-wide attention input) instead
# of their 2H-wide concatenation; the residual and MLP steps are the same.
class MtpDecoderLayer(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.enorm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.hnorm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * config.hidden_size, config.hidden_size, bias=False)
        self.self_attn = DrafterAttention(config, input_size=config.hidden_size, layer_idx=layer_idx)
        self.mlp = DrafterMLP(config)
        self.input_layernorm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, embeds, hidden, cos, sin, cache=None, ttt_kv=None, output_attentions=False, attention_mask=None):
        u = self.eh_proj(torch.cat([self.enorm(embeds), self.hnorm(hidden)], dim=-1))  # (B, T, H)
        attn, weights = self.self_attn(self.input_layernorm(u), cos, sin, cache, ttt_kv, output_attentions, attention_mask)
        hidden = u + attn
        hidden = hidden + self.mlp(self.post_attention_layernorm(hidden))
        return hidden, weights  # a_t, pre-norm


# Adapted from modeling_eagle3.Eagle3Drafter with Eagle3->Mtp: no fc / fc_norm (one target state, read as is).
class MtpDrafter(DrafterPreTrainedModel):
    config_class = MtpConfig
    _no_split_modules = ["MtpDecoderLayer", "DrafterDecoderLayer"]

    def __init__(self, config: MtpConfig):
        super().__init__(config)
        self._build_common(config)
        # The first layer reads the token and the hidden input; the others are plain pre-norm layers on the stream.
        later = (DrafterDecoderLayer(config, i) for i in range(1, config.num_hidden_layers))
        self.layers = nn.ModuleList([MtpDecoderLayer(config, 0), *later])
        self.post_init()

    def project_target_hidden_states(
        self, target_hidden_states: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """The MTP head reads the target state as is: (B, T, H) or a one-element list."""
        if isinstance(target_hidden_states, (list, tuple)):
            if len(target_hidden_states) != 1:
                raise ValueError(f"an MTP drafter reads one target hidden state, got {len(target_hidden_states)}.")
            target_hidden_states = target_hidden_states[0]
        if target_hidden_states.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"target hidden state width {target_hidden_states.shape[-1]} != hidden_size={self.config.hidden_size}: "
                "pass the target's last hidden state (`hidden_states[config.target_layer_ids[0]]`)."
            )
        return target_hidden_states.to(self.lm_head.weight.dtype)


# Copied from modeling_eagle3 with Eagle3->Mtp.
MtpConfig.register_for_auto_class()
MtpDrafter.register_for_auto_class("AutoModel")

__all__ = ["MtpDrafter", "MtpDecoderLayer"]
