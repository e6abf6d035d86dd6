# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 drift`: the attention-drift diagnostic per chain depth (drift.json, drift.png, a table)."""

import os

import torch

from ..errors import InputError
from ..evaluation.drift import format_drift_table, measure_drift, plot_drift
from ..evaluation.prompts import render_prompt
from ..loading import load_drafters
from .common import (
    Bound,
    Integer,
    add,
    add_common_arguments,
    add_count_argument,
    add_output_dir_argument,
    drafter_options,
    load_target_for_cli,
    prompts_from_args,
    write_json_report,
)


def _room(ctx, other):
    """Positions the target's context leaves for one of --depth / --generate-tokens once the other and the two
    extra tokens are placed (the prompt comes on top: checked once it is tokenized)."""
    return None if ctx.context_length is None else ctx.context_length - other - 2


def add_arguments(parser):
    add_common_arguments(parser, multiple_drafters=True)
    add_output_dir_argument(parser, "--out", required=True, help="output folder for drift.json and drift.png")
    add_count_argument(
        parser,
        "--depth",
        default=8,
        at_most=Bound(
            lambda ctx: _room(ctx, ctx.generate_tokens), "the target's context - --generate-tokens - 2", defaults=False
        ),
        help="chain depth K to measure (default 8)",
    )
    add(
        parser,
        "--generate-tokens",
        type=Integer(0),
        default=32,
        at_most=Bound(lambda ctx: _room(ctx, ctx.depth), "the target's context - --depth - 2", defaults=False),
        help="tokens the target generates before drafting, so generated-token positions exist (default 32)",
    )
    add(
        parser, "--sink-tokens", type=Integer(0), default=4, help="first positions counted as sink/template (default 4)"
    )


def run(args):
    torch.manual_seed(0)
    target, tokenizer = load_target_for_cli(args)
    drafters = load_drafters(args.drafter, target, **drafter_options(args))
    prompts = prompts_from_args(args, tokenizer, default_suite="standard")
    rendered = [
        render_prompt(tokenizer, p, system_prompt=args.system_prompt, chat_template=args.chat_template) for p in prompts
    ]
    limit = getattr(target.config, "max_position_embeddings", None)
    needed = args.generate_tokens + args.depth + 2
    for p, ids in zip(prompts, rendered):
        if limit is not None and len(ids) + needed > limit:
            raise InputError(
                f"prompt {p.id} has {len(ids)} tokens; with --generate-tokens/--depth it needs {len(ids) + needed} "
                f"positions but the target's context is {limit}: use shorter prompts or a smaller --generate-tokens."
            )
    report = measure_drift(
        target, drafters, rendered, depth=args.depth, generate_tokens=args.generate_tokens, sink_tokens=args.sink_tokens
    )
    report["settings"].update({"target": args.target, "prompts": [p.id for p in prompts]})
    write_json_report(os.path.join(args.out, "drift.json"), report, announce=False)
    plot_drift(report, os.path.join(args.out, "drift.png"))
    print(format_drift_table(report))
    print(f"wrote {os.path.join(args.out, 'drift.json')} and {os.path.join(args.out, 'drift.png')}")
    return 0
