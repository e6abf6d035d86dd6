# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 target`: load a target (timing the load) and run a greedy smoke test."""

import argparse
import shutil
import time

import torch

from ..targets import DEFAULT_TARGET, TARGETS, load_target, target_cache_dir
from .common import WITHIN_CONTEXT, Integer, When, add, add_fact, add_model_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(
        parser,
        "target",
        flag="TARGET",
        nargs="?",
        default=None,
        help=f"target name or path (default: {DEFAULT_TARGET})",
    )
    add(parser, "--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    add_fact(parser, "embedded", lambda ctx: (ctx.target or DEFAULT_TARGET) in TARGETS)
    add(
        parser,
        "--rebuild",
        action="store_true",
        applies=When(f"only an embedded target ({', '.join(TARGETS)}) has a cached copy to rebuild", embedded=True),
        help="delete the cached copy of an embedded target first",
    )
    add(
        parser,
        "--max-new-tokens",
        type=Integer(0),
        default=24,
        at_most=WITHIN_CONTEXT,
        help="greedy tokens to generate as a smoke test (0: none)",
    )


def run(args) -> int:
    name = args.target or DEFAULT_TARGET
    if args.rebuild and name in TARGETS:
        shutil.rmtree(target_cache_dir(name), ignore_errors=True)
    start = time.perf_counter()
    model, tokenizer = load_target(args.target, dtype=getattr(torch, args.dtype))
    load_s = time.perf_counter() - start
    cfg = model.config
    print(
        f"loaded {name} in {load_s:.2f} s: {type(model).__name__}, {cfg.num_hidden_layers} layers, "
        f"hidden {cfg.hidden_size}, vocab {cfg.vocab_size}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M "
        f"parameters, {args.dtype}"
    )
    if args.max_new_tokens > 0:
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=args.max_new_tokens, do_sample=False)
        print(repr(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)))
    return 0
