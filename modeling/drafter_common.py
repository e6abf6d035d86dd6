# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Building blocks shared by the EAGLE-3 and MTP drafters: RMSNorm, rotary embedding, MLP, the attention that runs both
the inference chain (with a transformers `Cache`) and the train-time-test (TTT) unroll, and the `PreTrainedModel`
base that owns embeddings, the draft vocabulary and the chain/TTT loops.

This file travels with every Hub checkpoint (remote code): it imports torch and transformers only.
"""

import json
import os
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.utils import ModelOutput

from .candidate_generator import EagleCandidateGenerator, SpeculativeGenerator
from .drafting_settings import DraftingSettings
from .speculative_decoding import install_generation_door
from .tree_drafting import TreeCandidateGenerator


# Adapted from transformers.models.llama.modeling_llama.LlamaRMSNorm (renamed; same computation).
class DrafterRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


# Adapted from transformers.models.llama.modeling_llama.LlamaRotaryEmbedding: the same tables (and the same
# `ROPE_INIT_FUNCTIONS` for scaled rope types), computed on first use instead of held in a buffer.
class DrafterRotary(nn.Module):
    """Rotary tables computed from `config.rope_parameters` on the fly (no buffers, so loading never touches them)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        params = dict(config.rope_parameters or {})
        self.rope_type = params.get("rope_type", "default")
        self.rope_theta = float(params.get("rope_theta", 10000.0))
        self._inv_freq = None

    def _compute_inv_freq(self, device):
        if self.rope_type == "default":
            dim = self.config.head_dim
            inv_freq = 1.0 / (self.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
            return inv_freq.to(device), 1.0
        if self.rope_type not in ROPE_INIT_FUNCTIONS:
            raise ValueError(f"unsupported rope_type {self.rope_type!r}: use one of {['default', *ROPE_INIT_FUNCTIONS]}.")
        inv_freq, scaling = ROPE_INIT_FUNCTIONS[self.rope_type](self.config, device)
        return inv_freq, scaling

    @torch.no_grad()
    def forward(self, position_ids, dtype):
        # position_ids: (B, T) -> cos, sin: (B, T, head_dim)
        if self._inv_freq is None or self._inv_freq[0].device != position_ids.device:
            self._inv_freq = self._compute_inv_freq(position_ids.device)
        inv_freq, scaling = self._inv_freq
        freqs = position_ids[..., None].float() * inv_freq  # (B, T, head_dim/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)


# Copied from transformers.models.llama.modeling_llama.rotate_half (one-line slicing).
def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


# Adapted from transformers.models.llama.modeling_llama.apply_rotary_pos_emb (unsqueeze_dim fixed at 1).
def apply_rotary(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, hd)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


# Adapted from transformers.models.llama.modeling_llama.repeat_kv (same expand + reshape).
def repeat_kv(x, n_rep):
    if n_rep == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


# Copied from transformers.models.llama.modeling_llama.LlamaMLP (without mlp_bias: no bias, as Llama by default).
class DrafterMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class DrafterAttention(nn.Module):
    """
    Causal attention with two execution modes that compute the same function:

    * chain mode (`cache` is a transformers `Cache`): the keys of every fed position are appended to the
      cache and each new query attends to everything cached plus the new block causally. This is how the drafter
      runs inside `generate`.
    * TTT mode (`ttt_kv` is a list): step 0 is plain causal attention over the sequence; at TTT step j the query at
      position t attends to the step-0 keys at positions <= t plus the step-1..j keys *at position t only* (the
      diagonal). That is exactly the key set the drafter sees at chain depth j during inference.
    """

    def __init__(self, config, input_size, layer_idx=0):
        super().__init__()
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.n_rep = self.num_heads // self.num_kv_heads
        self.scaling = self.head_dim**-0.5
        bias = getattr(config, "attention_bias", False)
        self.q_proj = nn.Linear(input_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(input_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(input_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=bias)

    def forward(self, x, cos, sin, cache=None, ttt_kv=None, output_attentions=False, attention_mask=None):
        bsz, q_len, _ = x.shape
        q = self.q_proj(x).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(bsz, q_len, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(bsz, q_len, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, k, cos, sin)

        if ttt_kv is not None:
            out, weights = self._ttt_attention(q, k, v, ttt_kv)
        else:
            if cache is not None:
                k, v = cache.update(k, v, self.layer_idx)
            out, weights = self._chain_attention(q, k, v, output_attentions, attention_mask)
        out = out.transpose(1, 2).reshape(bsz, q_len, self.num_heads * self.head_dim)
        return self.o_proj(out), weights

    def _chain_attention(self, q, k, v, output_attentions, attention_mask=None):
        # `attention_mask` (q_len, kv_len) or per row (B, q_len, kv_len) bool, True = visible: a draft tree's mask
        # (tree_drafting.py) or a batch's ragged cache (batched_decoding.py); else causal.
        q_len, kv_len = q.shape[2], k.shape[2]
        if q_len <= self.grouped_query_max_len and not output_attentions:
            return self._grouped_attention(q, k, v, attention_mask), None
        k, v = repeat_kv(k, self.n_rep), repeat_kv(v, self.n_rep)
        # The new block sits at the end of the cache: query i sees keys 0 .. kv_len - q_len + i.
        allowed = torch.ones(q_len, kv_len, dtype=torch.bool, device=q.device).tril(kv_len - q_len)
        if attention_mask is not None:
            allowed = attention_mask if attention_mask.dim() == 2 else attention_mask[:, None]  # (B, 1, T, L)
        if not output_attentions:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=self.scaling), None
        scores = (q @ k.transpose(-1, -2)) * self.scaling
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        weights = scores.float().softmax(-1).to(q.dtype)  # (B, nh, q_len, kv_len)
        return weights @ v, weights

    # Chain steps and verified blocks are a few queries against the whole cache. For them, grouping the query heads
    # of each key/value head ((B, nkv, n_rep * T, hd) against (B, nkv, L, hd)) avoids copying the cache n_rep times,
    # and two matmuls beat the fused CPU kernels at this shape (several times over in bf16). Prefill takes SDPA.
    grouped_query_max_len = 16

    def _grouped_attention(self, q, k, v, attention_mask=None):
        bsz, _, q_len, _ = q.shape
        kv_len = k.shape[2]
        grouped = q.reshape(bsz, self.num_kv_heads, self.n_rep * q_len, self.head_dim)
        scores = (grouped @ k.transpose(-1, -2)) * self.scaling  # (B, nkv, n_rep * T, L)
        if attention_mask is not None:  # rows of `grouped` are (rep, t): the mask repeats per query head of a group
            if attention_mask.dim() == 2:
                grouped_mask = attention_mask.repeat(self.n_rep, 1)  # (n_rep * T, L)
            else:
                grouped_mask = attention_mask.repeat(1, self.n_rep, 1)[:, None]  # (B, 1, n_rep * T, L)
            scores = scores.masked_fill(~grouped_mask, torch.finfo(scores.dtype).min)
        elif q_len > 1:  # the new block sits at the end of the cache: query i sees keys 0 .. kv_len - q_len + i
            hidden = torch.ones(q_len, kv_len, dtype=torch.bool, device=q.device).triu(kv_len - q_len + 1)
            scores = scores.masked_fill(hidden.repeat(self.n_rep, 1), torch.finfo(scores.dtype).min)
        probs = scores.float().softmax(-1).to(v.dtype)
        return (probs @ v).reshape(bsz, self.num_heads, q_len, self.head_dim)

    def _ttt_attention(self, q, k, v, ttt_kv):
        ttt_kv.append((k, v))
        k0, v0 = (repeat_kv(t, self.n_rep) for t in ttt_kv[0])
        seq = q.shape[2]
        causal = torch.ones(seq, seq, dtype=torch.bool, device=q.device).tril()
        scores = (q @ k0.transpose(-1, -2)) * self.scaling
        scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)  # (bf16 under autocast)
        # Diagonal scores against the keys of steps 1..j at the same position: (B, nh, T, 1) each.
        diag = [(q * repeat_kv(ki, self.n_rep)).sum(-1, keepdim=True) * self.scaling for ki, _ in ttt_kv[1:]]
        probs = torch.cat([scores, *diag], dim=-1).float().softmax(-1).to(q.dtype)  # (B, nh, T, T + j)
        out = probs[..., :seq] @ v0
        for i, (_, vi) in enumerate(ttt_kv[1:]):
            out = out + probs[..., seq + i : seq + i + 1] * repeat_kv(vi, self.n_rep)
        return out, probs


class DrafterDecoderLayer(nn.Module):
    """
    A standard pre-norm decoder layer on the H-wide stream: the drafter's layers after the first (which reads the
    token embedding and the hidden input). Each has its own `layer_idx` in the drafter's cache.
    """

    def __init__(self, config, layer_idx):
        super().__init__()
        self.self_attn = DrafterAttention(config, input_size=config.hidden_size, layer_idx=layer_idx)
        self.mlp = DrafterMLP(config)
        self.input_layernorm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden, cos, sin, cache=None, ttt_kv=None, output_attentions=False, attention_mask=None):
        attn, weights = self.self_attn(
            self.input_layernorm(hidden), cos, sin, cache, ttt_kv, output_attentions, attention_mask
        )
        hidden = hidden + attn
        hidden = hidden + self.mlp(self.post_attention_layernorm(hidden))
        return hidden, weights  # (B, T, H), pre-norm


def _cache_argument(cache, past_key_values):
    """`cache=` (transformers >= 5.24 naming) with `past_key_values=` accepted as a deprecated alias."""
    if past_key_values is None:
        return cache
    if cache is not None:
        raise ValueError("pass the drafter's cache as `cache=` only (`past_key_values=` is its deprecated alias), not both.")
    warnings.warn(
        "`past_key_values=` is deprecated for hf-eagle31 drafters: pass `cache=` (the name transformers >= 5.24 uses).",
        FutureWarning,
        stacklevel=3,
    )
    return past_key_values


def _warn_renamed_output(old: str, new: str) -> None:
    warnings.warn(
        f"`DrafterOutput.{old}` is deprecated and will be removed in the next release: read `DrafterOutput.{new}` "
        "(`next_hidden` feeds the next chain step, `pre_norm_hidden` is the decoder output before the final norm).",
        FutureWarning,
        stacklevel=3,
    )


@dataclass
class DrafterOutput(ModelOutput):
    """
    logits: (B, T, draft_vocab_size) draft-vocabulary logits.
    next_hidden: (B, T, H) the state the *next* chain step receives (`forward(hidden_states=...)`) — `norm(a)` with
        `norm_output`, else `a`.
    pre_norm_hidden: (B, T, H) the output `a` of the last decoder layer, before the final norm.
    cache: the drafter's cache (`past_key_values` is a read-only alias, the name transformers < 5.24 used).
    attentions: (B, nh, T, kv_len) attention probabilities of the first decoder layer (the one that reads the token
        and the fed hidden state) when `output_attentions=True`.
    ttt_logits: with `forward(..., ttt_steps=N, return_dict=True)`, the N (B, T, draft_vocab_size) logits of the
        train-time-test unroll, one per step (what `ttt_forward` returns); the fields above are then None.

    `hidden_states` and `last_hidden_state` are read-only deprecated aliases of `next_hidden` and `pre_norm_hidden`
    (they are not fields: transformers gives those names other meanings).
    """

    logits: torch.FloatTensor | None = None
    next_hidden: torch.FloatTensor | None = None
    pre_norm_hidden: torch.FloatTensor | None = None
    cache: Cache | None = None
    attentions: torch.FloatTensor | None = None
    ttt_logits: tuple[torch.FloatTensor, ...] | None = None

    @property
    def past_key_values(self) -> Cache | None:
        return self.cache

    @property
    def hidden_states(self) -> torch.FloatTensor | None:
        _warn_renamed_output("hidden_states", "next_hidden")
        return self.next_hidden

    @property
    def last_hidden_state(self) -> torch.FloatTensor | None:
        _warn_renamed_output("last_hidden_state", "pre_norm_hidden")
        return self.pre_norm_hidden


def _tensor_identity(tensor):
    """Which tensor this is (storage, offset, shape, version): changes when the weights are replaced or edited."""
    return (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor._version)


def _weights_file(source, subfolder: str, key: str) -> str:
    """The weights file of checkpoint `source` that holds tensor `key` (for messages; the checkpoint if unknown)."""
    folder = os.path.join(str(source), subfolder)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = os.path.join(folder, index_name)
        if os.path.isfile(index):
            try:
                with open(index) as f:
                    shard = json.load(f).get("weight_map", {}).get(key)
            except (OSError, ValueError):
                shard = None
            return os.path.join(folder, shard) if shard else index
    for name in ("model.safetensors", "pytorch_model.bin"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return str(source)


def check_finite_weights(model: nn.Module, source, skip=(), subfolder: str = "") -> None:
    """
    Refuses a drafter whose loaded weights hold NaN / inf (a diverged training run saved anyway, a corrupt copy) in
    one line naming the file, the tensor and the fix; run by `from_pretrained`, so `AutoModel.from_pretrained(...,
    trust_remote_code=True)` refuses it too. `skip`: keys the checkpoint did not hold (initialised, not loaded).
    One pass over the floating-point tensors (meta / empty shards of DeepSpeed or FSDP pass).
    """
    for name, tensor in model.state_dict().items():
        if name in skip or not tensor.is_floating_point() or tensor.device.type == "meta" or not tensor.numel():
            continue
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(
                f"{_weights_file(source, subfolder, name)}: weight {name} holds NaN/inf: the drafter is broken (a "
                "diverged training run?); resume from its last checkpoint with finite weights at a lower learning "
                "rate, or train again."
            )


class DrafterPreTrainedModel(PreTrainedModel):
    """
    Shared machinery of the drafters. Subclasses define `self.layers` (`config.num_hidden_layers` decoder layers: the
    first one's forward takes `(token_embeds, hidden, cos, sin, ...)`, the others are `DrafterDecoderLayer`s) and
    `project_target_hidden_states`.
    """

    base_model_prefix = "drafter"
    supports_gradient_checkpointing = False
    # No `_supports_sdpa` / `_supports_flash_attn`: `DrafterAttention` picks its own kernel per shape (grouped matmuls
    # for chain steps, SDPA for longer blocks, explicit scores for TTT and `output_attentions`) and never reads
    # `config._attn_implementation`, so declaring a backend it does not honour would mislead.
    _skip_keys_device_placement = ["cache", "past_key_values"]

    def _build_common(self, config):
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.embed_tokens.weight.requires_grad_(False)  # the target's embeddings, frozen
        self.norm = DrafterRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.draft_vocab_size, bias=False)
        self.rotary_emb = DrafterRotary(config)
        # Draft id i <-> target id i + d2t[i]; t2d[v] says whether target id v is in the draft vocabulary.
        self.register_buffer("d2t", torch.zeros(config.draft_vocab_size, dtype=torch.long))
        self.register_buffer("t2d", torch.ones(config.vocab_size, dtype=torch.bool))
        if config.draft_vocab_size < config.vocab_size:
            self.t2d[config.draft_vocab_size :] = False
        self.embeddings_ready = False
        if not config.embeddings_in_checkpoint:
            # Saved without embeddings on purpose (they are the target's): not a missing weight to report on load.
            self._keys_to_ignore_on_load_missing = [r"(^|\.)embed_tokens\.weight$"]
        # The one door into transformers' generate (speculative_decoding.py): opened by the first drafter built in a
        # process, not by importing this file.
        install_generation_door()
        if getattr(self, "generation_config", None) is None:
            # Read by `generate(..., assistant_model=drafter)`: draft length K and its schedule.
            self.generation_config = GenerationConfig(num_assistant_tokens=6, num_assistant_tokens_schedule="constant")

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, DrafterPreTrainedModel):
            init.zeros_(module.d2t)
            mask = torch.zeros_like(module.t2d)
            mask[: module.config.draft_vocab_size] = True
            init.copy_(module.t2d, mask)

    def get_candidate_generator(self, generation_config, **kwargs) -> SpeculativeGenerator:
        """The generator of one `generate` call (`speculative_decoding.py`): a `TreeCandidateGenerator` when the call's
        settings (its kwargs over this drafter's generation_config.json) ask for a tree, else the chain's."""
        settings = DraftingSettings.resolve(generation_config, self)
        cls = TreeCandidateGenerator if settings.tree is not None else EagleCandidateGenerator
        return cls(drafter=self, generation_config=generation_config, settings=settings, **kwargs)

    # ------------------------------------------------------------------ embeddings and draft vocabulary

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def load_target_embeddings(self, target: PreTrainedModel | torch.Tensor) -> "DrafterPreTrainedModel":
        """Copies the target's input embeddings (frozen). `target` is a model or an embedding weight tensor."""
        if isinstance(target, torch.Tensor):
            weight = target
        else:
            weight = target.get_input_embeddings().weight
        self._check_vocab_matrix(
            weight, "target embeddings",
            f"build the drafter with `{type(self.config).__name__}.from_target(target.config)`",
        )
        with torch.no_grad():
            self.embed_tokens.weight.copy_(weight.detach().to(self.embed_tokens.weight.dtype))
        self.embed_tokens.weight.requires_grad_(False)
        self.embeddings_ready = True
        self._embeddings_source = _tensor_identity(weight)
        return self

    def use_target_embeddings(self, target: PreTrainedModel) -> "DrafterPreTrainedModel":
        """
        Makes sure the embeddings are `target`'s before drafting for it: loads them when missing, or when they were
        copied from another target's embedding matrix (a drafter reused with a second target of the same shape).
        Embeddings stored in the checkpoint are kept.
        """
        weight = target.get_input_embeddings().weight
        source = getattr(self, "_embeddings_source", None)
        if not self.embeddings_ready or (source is not None and source != _tensor_identity(weight)):
            self.load_target_embeddings(target)
        return self

    def set_draft_vocab(self, target_token_ids: torch.Tensor | list[int]) -> None:
        """Sets the draft vocabulary to `target_token_ids` (D distinct target ids, kept in ascending order)."""
        ids = torch.as_tensor(target_token_ids, dtype=torch.long).flatten().unique()  # sorted
        if ids.numel() != self.config.draft_vocab_size:
            raise ValueError(
                f"got {ids.numel()} distinct draft token ids but draft_vocab_size={self.config.draft_vocab_size}: "
                "pass exactly draft_vocab_size ids (e.g. the top-D most frequent target tokens)."
            )
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise ValueError(f"draft token ids must lie in [0, vocab_size={self.config.vocab_size}).")
        with torch.no_grad():
            self.d2t.copy_(ids.to(self.d2t.device) - torch.arange(ids.numel(), device=self.d2t.device))
            self.t2d.zero_()
            self.t2d[ids.to(self.t2d.device)] = True

    def _check_vocab_matrix(self, weight, what, fix):
        expected = (self.config.vocab_size, self.config.hidden_size)
        if tuple(weight.shape) != expected:
            raise ValueError(
                f"{what} has shape {tuple(weight.shape)} but this drafter expects (vocab_size, hidden_size) = "
                f"{expected}: {fix}."
            )

    def init_lm_head_from_target(self, head_weight: torch.Tensor) -> "DrafterPreTrainedModel":
        """
        Warm start for training: copies the rows of the target's LM head (V, H) that belong to the draft vocabulary
        into `lm_head`, so the drafter starts out speaking the target's output space. Call after `set_draft_vocab`.
        """
        self._check_vocab_matrix(
            head_weight, "target LM head", "a head warm start needs a drafter as wide as its target (or skip it)"
        )
        with torch.no_grad():
            rows = head_weight.detach()[self.draft_to_target_ids.to(head_weight.device)]
            self.lm_head.weight.copy_(rows.to(self.lm_head.weight))
        return self

    @property
    def draft_to_target_ids(self) -> torch.LongTensor:
        """(D,) target id of every draft id."""
        return torch.arange(self.d2t.numel(), device=self.d2t.device) + self.d2t

    def to_target_logits(self, draft_logits: torch.Tensor) -> torch.Tensor:
        """Scatters draft logits (..., D) into full-vocabulary logits (..., V), -inf outside the draft vocabulary."""
        full = draft_logits.new_full((*draft_logits.shape[:-1], self.config.vocab_size), float("-inf"))
        full[..., self.draft_to_target_ids] = draft_logits
        return full

    # ------------------------------------------------------------------ target compatibility

    def check_target(self, target_config: PretrainedConfig) -> None:
        """Raises a ValueError naming both values if this drafter was not built for `target_config`."""
        text = target_config.get_text_config() if hasattr(target_config, "get_text_config") else target_config
        cfg = self.config
        checks = [  # vocab first: a drafter for another tokenizer is told so, whatever else differs
            ("vocab size", cfg.vocab_size, getattr(text, "vocab_size", None)),
            ("hidden size", cfg.target_hidden_size, getattr(text, "hidden_size", None)),
        ]
        if cfg.target_num_hidden_layers is not None:
            checks.append(("layer count", cfg.target_num_hidden_layers, getattr(text, "num_hidden_layers", None)))
        for what, drafter_value, target_value in checks:
            if target_value is not None and drafter_value != target_value:
                tokenizer = " (it was built for another tokenizer)" if what == "vocab size" else ""
                raise ValueError(
                    f"drafter/target mismatch: the drafter expects a target {what} of {drafter_value} but the target "
                    f"has {target_value}{tokenizer}; use a drafter trained for this target (or build one with "
                    f"`{type(cfg).__name__}.from_target(target.config)`)."
                )
        if cfg.target_layer_ids is None:
            raise ValueError("the drafter config has no `target_layer_ids`: set the target hidden states it reads.")
        num_layers = getattr(text, "num_hidden_layers", None)
        if num_layers is not None and max(cfg.target_layer_ids) > num_layers:
            raise ValueError(
                f"target_layer_ids={cfg.target_layer_ids} reach past the target's {num_layers} layers: "
                f"use indices in [0, {num_layers}]."
            )

    # ------------------------------------------------------------------ forward: one chain step / prefill block

    def _require_embeddings(self):
        if not self.embeddings_ready:
            raise ValueError(
                "the drafter's input embeddings are not loaded (they are the target's): call "
                "`drafter.load_target_embeddings(target)` first (`target.generate(..., assistant_model=drafter)` "
                "does it automatically)."
            )

    def project_target_hidden_states(
        self, target_hidden_states: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """The captured target states of a block -> the (B, T, H) hidden input of the first decoder layer."""
        raise NotImplementedError

    def _decoder_stack(
        self, embeds, hidden, cos, sin, cache=None, ttt_kv=None, output_attentions=False, attention_mask=None
    ):
        """
        Runs the decoder layers: the first reads (token embedding, hidden input), the others the (B, T, H) stream.
        `ttt_kv` holds one TTT key/value list per layer. Returns the last layer's pre-norm output `a` and the first
        layer's attention probabilities (when asked for).
        """
        a, attentions = self.layers[0](
            embeds, hidden, cos, sin, cache=cache, ttt_kv=None if ttt_kv is None else ttt_kv[0],
            output_attentions=output_attentions, attention_mask=attention_mask,
        )
        for i in range(1, len(self.layers)):
            a, _ = self.layers[i](
                a, cos, sin, cache=cache, ttt_kv=None if ttt_kv is None else ttt_kv[i], attention_mask=attention_mask
            )
        return a, attentions

    def forward(
        self,
        input_ids: torch.LongTensor,
        hidden_states: torch.Tensor | None = None,
        target_hidden_states: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...] | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool = True,
        output_attentions: bool = False,
        ttt_steps: int | None = None,
        logits_to_keep: int = 0,
        past_key_values: Cache | None = None,
        return_dict: bool | None = None,
        attention_mask: torch.BoolTensor | None = None,
    ) -> DrafterOutput | list[torch.FloatTensor]:
        r"""
        Runs the drafter on a block of positions and returns a `DrafterOutput`.

        input_ids (`(B, T)`): the *token input* of each position — for position t, the token x_{t+1} that follows
            the target position whose features are given (or the previously drafted token in a chain step).
        target_hidden_states (`(B, T, k*H')` or a list of k `(B, T, H')` tensors): captured target states
            (prefill / after verification); mutually exclusive with `hidden_states`.
        hidden_states (`(B, T, H)`): the drafter's own state from the previous chain step (its
            `DrafterOutput.next_hidden`).
        position_ids (`(B, T)`): rotary positions; default continues after the cache.
        cache (`Cache`): the drafter's cache, extended in place (a fresh `DynamicCache` when omitted and `use_cache`).
        logits_to_keep (`int`): compute logits for the last n positions only (0 = all), as transformers' LMs do.
        ttt_steps (`int`, *optional*): run the train-time-test unroll of `ttt_forward` instead (`input_ids` and
            `target_hidden_states` aligned as there). With `return_dict=True` its per-step logits come back as
            `DrafterOutput.ttt_logits`: this is how a trainer calls the unroll through `model(...)`, so that DDP /
            FSDP / DeepSpeed wrappers and accelerate's mixed-precision autocast (which all act on `forward`) see it.
            Without `return_dict=True` it still returns the bare list, deprecated (FutureWarning): call `ttt_forward`
            for the list; from the next release on `forward` returns a `DrafterOutput` in every case.
        past_key_values: deprecated alias of `cache` (transformers < 5.24 naming).
        attention_mask (`(T, kv_len)` or `(B, T, kv_len)` bool, True = visible): replaces the causal mask of the new
            block against the cache (a draft tree's mask: each node sees the cached prefix and its ancestors, see
            `tree_drafting.py`; per row, a batch whose rows accepted different numbers of tokens, see
            `batched_decoding.py`).
        """
        cache = _cache_argument(cache, past_key_values)
        if ttt_steps is not None:
            step_logits = self.ttt_forward(input_ids, target_hidden_states, ttt_steps)
            if return_dict:
                return DrafterOutput(ttt_logits=tuple(step_logits))
            warnings.warn(
                "`forward(..., ttt_steps=N)` returning a list is deprecated and will return a `DrafterOutput` in the "
                "next release: call `drafter.ttt_forward(input_ids, target_hidden_states, N)` for the list, or pass "
                "`return_dict=True` and read `.ttt_logits` (the call to use through DDP / FSDP / DeepSpeed wrappers).",
                FutureWarning,
                stacklevel=2,
            )
            return step_logits
        self._require_embeddings()
        if (hidden_states is None) == (target_hidden_states is None):
            raise ValueError("pass exactly one of `hidden_states` (chain step) or `target_hidden_states` (prefill).")
        if target_hidden_states is not None:
            hidden_states = self.project_target_hidden_states(target_hidden_states)
        if use_cache and cache is None:
            cache = DynamicCache()
        if position_ids is None:
            start = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)[None]
            position_ids = position_ids.expand(input_ids.shape[0], -1)
        embeds = self.embed_tokens(input_ids).to(hidden_states.dtype)
        cos, sin = self.rotary_emb(position_ids, hidden_states.dtype)
        a, attentions = self._decoder_stack(
            embeds, hidden_states, cos, sin, cache=cache if use_cache else None, output_attentions=output_attentions,
            attention_mask=attention_mask,
        )
        normed = self.norm(a)
        return DrafterOutput(
            logits=self.lm_head(normed[:, -logits_to_keep:] if logits_to_keep else normed),
            next_hidden=normed if self.config.norm_output else a,
            pre_norm_hidden=a,
            cache=cache if use_cache else None,
            attentions=attentions,
        )

    # ------------------------------------------------------------------ train-time test

    def ttt_forward(
        self,
        input_ids: torch.LongTensor,
        target_hidden_states: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...],
        ttt_steps: int,
        return_hidden_states: bool = False,
    ) -> list[torch.FloatTensor] | tuple[list[torch.FloatTensor], list[torch.Tensor]]:
        r"""
        Unrolls the drafter for `ttt_steps` train-time-test steps over whole sequences (EAGLE-3 training). A trainer
        whose model may be wrapped (DDP / FSDP / DeepSpeed / accelerate autocast) calls the same unroll as
        `model(input_ids=..., target_hidden_states=..., ttt_steps=N, return_dict=True).ttt_logits`.

        Inputs are aligned as the target saw them: `input_ids` (B, n) are x_0..x_{n-1} and `target_hidden_states`
        (B, n, k*H') the features g_0..g_{n-1}. Step j at position t receives token x_{t+1+j} (shifted here; past the
        end it is a pad that the loss must mask), the hidden input FC(g_t) for j = 0 or the step j-1 output at t
        (of the last decoder layer) otherwise, and rotary position t+j; each decoder layer keeps its own TTT keys.
        Its logits predict x_{t+2+j}, whose teacher distribution is the target's logits at position t+1+j.

        Returns a list of `ttt_steps` draft-vocabulary logit tensors (B, n, D) (and, with `return_hidden_states`,
        the list of hidden inputs fed to each step).
        """
        self._require_embeddings()
        bsz, seq = input_ids.shape
        hidden = self.project_target_hidden_states(target_hidden_states)  # (B, n, H)
        base_positions = torch.arange(seq, device=input_ids.device)[None].expand(bsz, -1)
        ttt_kv = [[] for _ in self.layers]  # per layer: the (k, v) of every step so far
        all_logits, all_inputs = [], []
        for step in range(ttt_steps):
            shifted = input_ids.new_zeros(bsz, seq)
            keep = max(seq - 1 - step, 0)
            shifted[:, :keep] = input_ids[:, 1 + step : 1 + step + keep]
            embeds = self.embed_tokens(shifted).to(hidden.dtype)
            cos, sin = self.rotary_emb(base_positions + step, hidden.dtype)
            all_inputs.append(hidden)
            a, _ = self._decoder_stack(embeds, hidden, cos, sin, ttt_kv=ttt_kv)
            normed = self.norm(a)
            all_logits.append(self.lm_head(normed))
            hidden = normed if self.config.norm_output else a
        return (all_logits, all_inputs) if return_hidden_states else all_logits

    # ------------------------------------------------------------------ loading and saving

    # `from_pretrained` options of a checkpoint in another tool's layout (`checkpoint_formats.load_checkpoint`).
    _LAYOUT_OPTIONS = ("source_format", "target_config", "norm_output_semantics", "ignore_config_keys")
    # transformers options that keep their meaning for a checkpoint converted in memory (others are refused).
    _IN_MEMORY_OPTIONS = ("dtype", "torch_dtype", "device_map", "trust_remote_code", "low_cpu_mem_usage", "use_safetensors")

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """
        transformers' loader, with one-line errors naming the checkpoint: a missing config.json, unknown config keys,
        truncated or corrupt weights, and weights holding NaN / inf (`check_finite_weights`).

        An EAGLE-3 drafter in another tool's layout (SafeAILab EAGLE-3 / SpecForge `midlayer`, vLLM, vllm-project/
        speculators; a directory or Hub id) loads too, converted in memory with the rules of `hf-eagle31 convert`
        (`checkpoint_formats.py`: the same refusals, the same tensors); `save_pretrained` then writes our layout.
        Its options: `target_config` (the target's config, or the target: gives the layer count an EAGLE checkpoint
        implies and is checked against the drafter), `target_layer_ids` (overrides the captured layers),
        `norm_output_semantics` ("post-norm-feed" / "pre-norm-feed": what a SpecForge checkpoint's `norm_output: true`
        means when it does not record it), `ignore_config_keys` (config keys known to be harmless, read as if
        absent), `source_format` (read as that format: "eagle", "vllm", "speculators").
        """
        source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        layout = {k: kwargs.pop(k) for k in cls._LAYOUT_OPTIONS if k in kwargs}
        if layout.get("source_format") not in (None, "hf-eagle31") or cls._is_foreign_layout(source, kwargs):
            return cls._from_foreign_layout(source, layout, kwargs)
        loaded = cls._from_our_layout(*args, **kwargs)
        target = layout.get("target_config")
        if target is not None:  # checked as `hf-eagle31 convert --target` checks a checkpoint of any layout
            (loaded[0] if isinstance(loaded, tuple) else loaded).check_target(getattr(target, "config", target))
        return loaded

    @classmethod
    def _is_foreign_layout(cls, source, kwargs) -> bool:
        """Whether `source`'s config.json is an EAGLE-3 drafter in another tool's layout (for an EAGLE-3 drafter class
        only; an unreadable config is left to transformers' loader and its messages)."""
        from .checkpoint_formats import HUB_KWARGS, is_foreign_config, read_config_file

        if cls.config_class.model_type != "eagle3_drafter" or kwargs.get("config") is not None:
            return False
        try:
            config = read_config_file(source, {k: kwargs[k] for k in HUB_KWARGS if k in kwargs})
        except (OSError, ValueError):
            return False
        return is_foreign_config(config)

    @classmethod
    def _from_foreign_layout(cls, source, layout, kwargs):
        from .checkpoint_formats import HUB_KWARGS, drafter_from_checkpoint, load_checkpoint

        if cls.config_class.model_type != "eagle3_drafter":
            raise ValueError(f"{source}: only EAGLE-3 drafters load from other tools' layouts: use Eagle3Drafter.from_pretrained.")
        want_info = kwargs.pop("output_loading_info", False)
        target_layer_ids = kwargs.pop("target_layer_ids", None)
        hub = {k: kwargs.pop(k) for k in HUB_KWARGS if k in kwargs}
        refused = sorted(k for k in kwargs if k not in cls._IN_MEMORY_OPTIONS)
        if refused:
            raise ValueError(
                f"{source} is converted in memory from another tool's layout, where `{refused[0]}` does not apply: "
                "load it without it, or convert it once (`hf-eagle31 convert SRC DST --to hf-eagle31`) and load DST."
            )
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype")) or "auto"
        if isinstance(dtype, str) and dtype != "auto":
            dtype = getattr(torch, dtype)
        target = layout.get("target_config")
        ckpt = load_checkpoint(
            source,
            cls,
            source_format=layout.get("source_format"),
            target_config=getattr(target, "config", target),
            target_layer_ids=target_layer_ids,
            norm_output_semantics=layout.get("norm_output_semantics"),
            ignore_config_keys=layout.get("ignore_config_keys"),
            options="python",
            hub_kwargs=hub,
        )
        model = drafter_from_checkpoint(ckpt, cls, dtype=dtype)
        model.config._name_or_path = str(source)
        missing = [] if ckpt.has_embeddings else ["embed_tokens.weight"]
        check_finite_weights(model, source, missing, hub.get("subfolder") or "")
        device = kwargs.get("device_map")
        if device is not None:
            if isinstance(device, dict) or device == "auto":
                raise ValueError(f"{source}: a drafter converted in memory goes on one device: pass device_map='cuda:0' (or a torch.device), or move it with .to().")
            model.to(device)
        info = {"missing_keys": missing, "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
        return (model, info) if want_info else model

    @classmethod
    def _from_our_layout(cls, *args, **kwargs):
        want_info = kwargs.pop("output_loading_info", False)
        source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        try:
            model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        except Exception as error:  # safetensors' errors ("header too small", "incomplete metadata") name no file
            if type(error).__name__ != "SafetensorError":
                raise
            raise ValueError(
                f"{source}: the .safetensors weights cannot be read ({error}): the file is truncated or corrupt; "
                "copy the checkpoint again (or re-save it with `save_pretrained`)."
            ) from error
        missing = set(info.get("missing_keys", ()))
        for key in ("d2t", "t2d"):
            if key in missing:
                raise ValueError(
                    f"checkpoint {args[0] if args else ''} has no `{key}` buffer: it is incomplete or corrupted; "
                    "re-export it (or convert it with `hf-eagle31 convert`)."
                )
        model.embeddings_ready = model.config.embeddings_in_checkpoint and "embed_tokens.weight" not in missing
        check_finite_weights(model, source, missing, kwargs.get("subfolder") or "")
        # The draft length K and its schedule travel in generation_config.json (transformers only loads that file
        # for models that generate on their own).
        hub_options = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only", "subfolder") if k in kwargs}
        if os.path.isdir(str(source)):
            # A local checkpoint without the file (older or converted ones) keeps the defaults; a broken file raises.
            if os.path.isfile(os.path.join(str(source), kwargs.get("subfolder") or "", "generation_config.json")):
                model.generation_config = GenerationConfig.from_pretrained(source, **hub_options)
        else:
            try:
                model.generation_config = GenerationConfig.from_pretrained(source, **hub_options)
            except OSError:  # the Hub repo has no generation_config.json: keep the defaults
                pass
        return (model, info) if want_info else model

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *args,
        include_embeddings: bool | None = None,
        state_dict: dict | None = None,
        **kwargs,
    ):
        """
        transformers' `save_pretrained` (weights, config, the remote-code files), plus generation_config.json. Embeddings
        are stored only when they are real (taken from the target): saving random ones raises.
        `include_embeddings=False` writes a smaller checkpoint whose embeddings are taken from the target at load time
        (`load_target_embeddings`, automatic in `generate`). Model cards: `hf_eagle31.hub.save_drafter`.
        """
        if include_embeddings is None:
            include_embeddings = self.config.embeddings_in_checkpoint
        if include_embeddings and not self.embeddings_ready:
            raise ValueError(
                "refusing to save random input embeddings: call `drafter.load_target_embeddings(target)` first, or "
                "save with `include_embeddings=False` so the target's embeddings are used at load time."
            )
        if state_dict is None:
            state_dict = self.state_dict()
        if not include_embeddings:
            state_dict = {k: v for k, v in state_dict.items() if not k.endswith("embed_tokens.weight")}
        previous = self.config.embeddings_in_checkpoint
        self.config.embeddings_in_checkpoint = bool(include_embeddings)
        try:
            result = super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
            if kwargs.get("is_main_process", True):
                self.generation_config.save_pretrained(save_directory)
            return result
        finally:
            self.config.embeddings_in_checkpoint = previous
