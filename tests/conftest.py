"""Shared tiny models for the test suite: random Llama targets, drafters built for them (fp32, CPU), and an offline
chat tokenizer."""

import json

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from hf_eagle31.modeling import VARIANTS as VARIANT_REGISTRY
from hf_eagle31.modeling import variant_classes


torch.set_num_threads(1)  # tiny models: threading costs more than it gives

VARIANTS = tuple(VARIANT_REGISTRY)  # eagle3, eagle3.1, mtp, mtp-postnorm


# SmolLM2-135M-Instruct's shape (the embedded default target): what a shipped drafter's `check_target` compares.
SMOLLM2_SIZES = dict(
    vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3
)


def tiny_sizes(vocab_size=64, num_hidden_layers=8, hidden_size=32, **kw):
    """The config fields of a tiny decoder (any family's config class takes them); `kw` adds or overrides fields."""
    sizes = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=None,
        bos_token_id=None,
        pad_token_id=None,
    )
    return {**sizes, **kw}


def tiny_target_config(**kw):
    return LlamaConfig(**tiny_sizes(**kw))


def tiny_target(seed=0, **kw):
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_target_config(**kw)).eval()


def make_drafter(target, variant="eagle3.1", draft_vocab_size=None, seed=1, **overrides):
    """A random drafter of `variant` for `target`, with real (target) embeddings and a shuffled draft vocab."""
    torch.manual_seed(seed)
    config_class, drafter_class = variant_classes(variant)
    config = config_class.from_target(target.config, variant=variant, draft_vocab_size=draft_vocab_size, **overrides)
    drafter = drafter_class(config)
    if config.draft_vocab_size < config.vocab_size:
        drafter.set_draft_vocab(torch.randperm(config.vocab_size)[: config.draft_vocab_size])
    return drafter.load_target_embeddings(target).eval()


def tiny_hybrid_target(seed=0):
    """A random Qwen3-Next-style target whose layers alternate linear attention (recurrent state) and full attention."""
    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

    torch.manual_seed(seed)
    config = Qwen3NextConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        moe_intermediate_size=16,
        shared_expert_intermediate_size=16,
        num_experts=4,
        num_experts_per_tok=2,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=8,
        linear_value_head_dim=8,
        max_position_embeddings=256,
        layer_types=["linear_attention", "full_attention", "linear_attention", "full_attention"],
        eos_token_id=None,
        bos_token_id=None,
        pad_token_id=None,
    )
    return Qwen3NextForCausalLM(config).eval()


def tiny_training_args(output_dir, **overrides):
    """`TrainingArguments` for tiny CPU runs (2 steps of batch 2, no saving, no reports); `overrides` win."""
    from transformers import TrainingArguments

    base = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=2,
        max_steps=2,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        learning_rate=1e-3,
    )
    return TrainingArguments(**{**base, **overrides})


@pytest.fixture
def target():
    return tiny_target()


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_chat_tokenizer(vocab_size=64):
    """An offline word-level tokenizer over `vocab_size` ids ("w0", "w1", ...) with a ChatML chat template."""
    special = ["<unk>", "<|im_start|>", "<|im_end|>"]
    words = ["system", "user", "assistant"] + [f"w{i}" for i in range(vocab_size - 6)]
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(special + words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces, so decode/encode round-trips
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", eos_token="<|im_end|>", additional_special_tokens=special[1:]
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def save_tiny_setup(root, variants=("eagle3.1",), num_prompts=3):
    """Saves a tiny target (+ chat tokenizer), drafters and a prompts.jsonl under `root`; returns their paths."""
    tokenizer = tiny_chat_tokenizer()
    target = tiny_target(eos_token_id=tokenizer.eos_token_id)
    target.generation_config.eos_token_id = None  # run to max_new_tokens: fixed-size outputs
    target_dir = root / "target"
    target.save_pretrained(target_dir)
    tokenizer.save_pretrained(target_dir)
    drafter_dirs = []
    for i, variant in enumerate(variants):
        drafter_dirs.append(root / f"drafter-{variant}")
        make_drafter(target, variant, seed=1 + i).save_pretrained(drafter_dirs[-1])
    prompts = root / "prompts.jsonl"
    with open(prompts, "w") as f:
        for i in range(num_prompts):
            words = " ".join(f"w{(3 * i + j) % 20}" for j in range(6 + 2 * i))
            if i % 2:
                f.write(json.dumps({"id": f"p{i}", "messages": [{"role": "user", "content": words}]}) + "\n")
            else:
                f.write(json.dumps({"id": f"p{i}", "prompt": words}) + "\n")
    return target, tokenizer, target_dir, drafter_dirs, prompts


def cli_flags(**options):
    """Command-line flags from keywords: `max_new_tokens=12` -> `--max-new-tokens 12`, `top_k=[1, 2]` -> `--top-k 1 2`,
    `profile=True` -> `--profile`."""
    argv = []
    for name, value in options.items():
        argv.append("--" + name.replace("_", "-"))
        if value is not True:
            argv += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return argv


class TinyCliSetup:
    """A tiny setup saved under `root` (`save_tiny_setup`: target folder, drafter folders, prompts.jsonl) and the
    command lines that run on it."""

    def __init__(self, root, variants=("eagle3.1",)):
        _, _, self.target_dir, self.drafter_dirs, self.prompts = save_tiny_setup(root, variants=variants)

    def argv(self, verb, drafters=None, **options):
        """`verb --target T --drafter D [--drafter D2 ...] --prompts P` + `cli_flags(**options)` (every drafter of
        the setup unless `drafters` says which)."""
        argv = [verb, "--target", str(self.target_dir)]
        for drafter_dir in self.drafter_dirs if drafters is None else drafters:
            argv += ["--drafter", str(drafter_dir)]
        return argv + ["--prompts", str(self.prompts), *cli_flags(**options)]
