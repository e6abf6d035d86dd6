# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 info`: describe a drafter built for (or loaded for) a target, and check it against the target.

It loads the target, builds the drafter config with `from_target` (or loads `--drafter`), prints sizes, parameter
counts, captured layers and switches, then runs one greedy `generate(assistant_model=drafter)` on a chat prompt and
checks the tokens equal plain greedy decoding (an untrained drafter is lossless too, it is just not accepted often).
"""

import time

import torch

from ..hub import norm_output_meaning
from ..loading import load_drafter
from ..modeling import VARIANTS
from ..targets import load_target
from ..training import build_drafter  # loads transformers' Trainer: only `info` pays for it
from .common import (
    WITHIN_CONTEXT,
    Bound,
    When,
    add,
    add_count_argument,
    add_drafter_argument,
    add_target_argument,
    add_trust_remote_code_argument,
    check_text,
)


def describe(drafter):
    cfg = drafter.config
    counts = {}
    for name, param in drafter.named_parameters():
        counts[name.split(".")[0]] = counts.get(name.split(".")[0], 0) + param.numel()
    lines = [
        f"drafter: {type(drafter).__name__} ({cfg.model_type})",
        f"  decoder layers {getattr(cfg, 'num_hidden_layers', 1)}, hidden {cfg.hidden_size}, "
        f"heads {cfg.num_attention_heads}/{cfg.num_key_value_heads} (q/kv), "
        f"head_dim {cfg.head_dim}, mlp {cfg.intermediate_size}",
        f"  vocab {cfg.vocab_size} (target), draft vocab {cfg.draft_vocab_size}",
        f"  target_layer_ids {cfg.target_layer_ids}: indices into the target's hidden_states "
        f"(hidden_states[i] = input of decoder layer i)",
        "  switches: "
        + ", ".join(f"{k}={getattr(cfg, k)}" for k in ("fc_norm", "norm_output", "norm_before_fc") if hasattr(cfg, k)),
        f"  chain feed: {norm_output_meaning(cfg)}",
        "  parameters: "
        + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items())
        + f" (trainable, embeddings excluded: {sum(v for k, v in counts.items() if k != 'embed_tokens') / 1e6:.2f}M)",
    ]
    return "\n".join(lines)


def add_arguments(parser):
    add_target_argument(parser)
    add_drafter_argument(parser, "--drafter", default=None, help="a drafter directory or Hub id to describe instead")
    add_trust_remote_code_argument(parser)
    fresh = When("a --drafter checkpoint has its own", drafter=None)
    add(parser, "--variant", default="eagle3.1", choices=list(VARIANTS), applies=fresh)
    add_count_argument(
        parser,
        "--draft-vocab-size",
        default=None,
        applies=fresh,
        at_most=Bound(lambda ctx: ctx.vocab_size, "the target's vocabulary size"),
    )
    add(parser, "--prompt", default="Name three primary colors.", check=check_text)
    add_count_argument(parser, "--max-new-tokens", default=24, at_most=WITHIN_CONTEXT)


def run(args):
    torch.manual_seed(0)
    target, tokenizer = load_target(args.target)
    cfg = target.config
    print(
        f"target: {type(target).__name__}, {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
        f"vocab {cfg.vocab_size}, {sum(p.numel() for p in target.parameters()) / 1e6:.1f}M parameters"
    )
    if args.drafter:
        # checked against the target, in its dtype, with its embeddings when the checkpoint has none
        drafter = load_drafter(
            args.drafter,
            target,
            trust_remote_code=args.trust_remote_code,
            norm_output_semantics=args.norm_output_semantics,
        )
    else:
        drafter = build_drafter(target.config, args.variant, args.draft_vocab_size).load_target_embeddings(target)
        drafter = drafter.to(target.dtype).eval()
        print("(untrained: a freshly initialised drafter, to show the shapes and the generate() path)")
    print(describe(drafter))

    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": args.prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    start = time.perf_counter()
    plain = target.generate(ids, max_new_tokens=args.max_new_tokens, do_sample=False)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    assisted = target.generate(ids, max_new_tokens=args.max_new_tokens, do_sample=False, assistant_model=drafter)
    assisted_s = time.perf_counter() - start
    stats = drafter.last_speculation_stats
    print(f"prompt: {args.prompt!r}")
    print(f"answer: {tokenizer.decode(assisted[0, ids.shape[1] :], skip_special_tokens=True)!r}")
    print(
        f"identical to plain greedy: {torch.equal(plain, assisted)}; tau {stats.tau:.2f}, "
        f"{stats.target_forwards} target forwards for {assisted.shape[1] - ids.shape[1]} tokens; "
        f"plain {plain_s:.2f}s, with drafter {assisted_s:.2f}s"
    )
    return 0 if torch.equal(plain, assisted) else 1
