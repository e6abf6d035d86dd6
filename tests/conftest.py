"""Shared tiny models for the test suite: random Llama/Qwen2 targets and drafters built for them (fp32, CPU)."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_eagle31 import Eagle3Config, Eagle3Drafter, MtpConfig, MtpDrafter


torch.set_num_threads(1)  # tiny models: threading costs more than it gives

VARIANTS = ("eagle3", "eagle3.1", "mtp", "mtp-postnorm")


def tiny_target_config(vocab_size=64, num_hidden_layers=8, hidden_size=32, **kw):
    kw.setdefault("eos_token_id", None)
    kw.setdefault("bos_token_id", None)
    kw.setdefault("pad_token_id", None)
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        **kw,
    )


def tiny_target(seed=0, **kw):
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_target_config(**kw)).eval()


def make_drafter(target, variant="eagle3.1", draft_vocab_size=None, seed=1, **overrides):
    """A random drafter of `variant` for `target`, with real (target) embeddings and a shuffled draft vocab."""
    torch.manual_seed(seed)
    if variant.startswith("mtp"):
        config = MtpConfig.from_target(target.config, variant=variant, draft_vocab_size=draft_vocab_size, **overrides)
        drafter = MtpDrafter(config)
    else:
        config = Eagle3Config.from_target(target.config, variant=variant, draft_vocab_size=draft_vocab_size, **overrides)
        drafter = Eagle3Drafter(config)
    if config.draft_vocab_size < config.vocab_size:
        drafter.set_draft_vocab(torch.randperm(config.vocab_size)[: config.draft_vocab_size])
    return drafter.load_target_embeddings(target).eval()


@pytest.fixture
def target():
    return tiny_target()
