# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 convert`: drafter checkpoints between hf-eagle31, EAGLE, speculators and vLLM formats."""

import argparse

from ..convert import EAGLE_CONSUMERS, EMBEDDING_MODES, FORMATS, NORM_OUTPUT_SEMANTICS, SWITCHES, convert_checkpoint
from ..hub import norm_output_meaning
from ..modeling import variant_of
from .common import add_model_argument, add_output_dir_argument, add_target_argument


def _layer_ids(text: str) -> list:
    """argparse type of --target-layer-ids: "2 4 5" and "2,4,5" both work."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid layer ids {text!r}: pass integers, e.g. 2 4 5 or 2,4,5") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(
        parser, "src", flag="SRC", help="drafter checkpoint directory (or Hub id) in any supported format"
    )
    add_output_dir_argument(parser, "dst", flag="DST", help="output directory (created)")
    parser.add_argument("--to", required=True, choices=FORMATS, help="output format")
    parser.add_argument(
        "--from",
        dest="source_format",
        choices=FORMATS,
        default=None,
        help="source format (default: detected from config.json and weight names); --from vllm reads a midlayer "
        "checkpoint as vLLM runs it",
    )
    add_target_argument(
        parser,
        help="the target (directory, Hub id or embedded name): supplies embeddings the source lacks, "
        "checks the ones it has, and gives the layer count EAGLE checkpoints imply",
    )
    parser.add_argument(
        "--embeddings",
        choices=EMBEDDING_MODES,
        default="auto",
        help="auto: keep/verify the source's, else take the target's, else write none where the "
        "format loads them from the target; target: replace; source: keep unchecked; none: drop",
    )
    parser.add_argument(
        "--target-layer-ids",
        type=_layer_ids,
        nargs="+",
        default=None,
        help="aux layers as indices into the target's HF hidden_states (= input of layer i); "
        "overrides what the source says or implies",
    )
    parser.add_argument(
        "--num-speculative-tokens",
        type=int,
        default=None,
        help="default draft length recorded in a speculators config (default: the source's, else 3)",
    )
    parser.add_argument(
        "--norm-output-semantics",
        choices=NORM_OUTPUT_SEMANTICS,
        default=None,
        help="what norm_output: true means in a SpecForge/EAGLE (midlayer) SRC that does not record it: "
        "post-norm-feed (SpecForge from PR #879, vLLM, SGLang: the next chain step gets the post-norm state) or "
        "pre-norm-feed (SpecForge before #879: norm before lm_head only; imported as norm_output=false)",
    )
    parser.add_argument(
        "--eagle-consumer",
        choices=EAGLE_CONSUMERS,
        default=None,
        help="who loads a --to eagle export of a drafter with fc_norm/norm_output/... on: specforge (SpecForge from "
        "PR #879, SGLang, vLLM read the switches) writes it; safeailab refuses (SafeAILab EAGLE drops fc_norm.* and "
        "runs plain EAGLE-3)",
    )
    parser.add_argument(
        "--allow-missing-embeddings",
        action="store_true",
        help="--to speculators without embeddings (no --target): vLLM takes the target's, but speculators 0.9.0 "
        "loads ZEROS and drafts garbage",
    )
    parser.add_argument(
        "--ignore-config-key",
        dest="ignore_config_keys",
        action="append",
        default=None,
        metavar="KEY",
        help="read SRC as if its config.json had no KEY (repeatable): for a key you know does not change the model, "
        "or norm_before_residual in a midlayer SRC read as SpecForge runs it",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")


def run(args) -> int:
    ckpt = convert_checkpoint(
        args.src,
        args.dst,
        args.to,
        source_format=args.source_format,
        target=args.target,
        embeddings=args.embeddings,
        target_layer_ids=[i for ids in args.target_layer_ids for i in ids] if args.target_layer_ids else None,
        num_speculative_tokens=args.num_speculative_tokens,
        overwrite=args.overwrite,
        norm_output_semantics=args.norm_output_semantics,
        eagle_consumer=args.eagle_consumer,
        allow_missing_embeddings=args.allow_missing_embeddings,
        ignore_config_keys=args.ignore_config_keys,
    )
    cfg = ckpt.config
    variant = variant_of(cfg).label
    print(f"{args.src} ({ckpt.source_format}) -> {args.dst} ({args.to})")
    print(
        f"  {variant}: {cfg.num_hidden_layers} decoder layer(s), hidden {cfg.hidden_size}, "
        f"draft vocab {cfg.draft_vocab_size}/{cfg.vocab_size}, switches "
        + ", ".join(f"{n}={getattr(cfg, n)}" for n in SWITCHES)
    )
    print(f"  chain feed: {norm_output_meaning(cfg)}")
    print(f"  aux layers (HF hidden_states indices = input of layer i): {cfg.target_layer_ids}")
    embeddings = "written (the target's)" if ckpt.has_embeddings else "not written (loaded from the target)"
    print(f"  embeddings: {embeddings}")
    return 0
