# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 demo`: answer a chat prompt with `target.generate(assistant_model=drafter)` and measure the speed-up.

Loads the target (default: the embedded SmolLM2-135M-Instruct) and a drafter (default: the EAGLE-3.1 drafter
shipped in `hf_eagle31/drafters/`), answers the prompt with the drafter, then times plain greedy decoding and
drafter decoding on the same prompt in the same run, alternating them, and prints the answer, τ and the speed-up.
"""

import statistics

import torch

from ..evaluation.timing import TargetForwardTimer, timed_generate
from ..loading import DEFAULT_DRAFTER, load_drafter
from ..targets import load_target
from .common import (
    add_drafter_dtype_argument,
    add_small_batch_argument,
    add_target_argument,
    add_trust_remote_code_argument,
    apply_small_batch_argument,
    drafter_dtype,
)


DEFAULT_PROMPT = "Explain in a few sentences why the sky is blue."


def add_arguments(parser):
    add_target_argument(parser)
    parser.add_argument("--drafter", default=None, help=f"drafter dir or Hub id (default: {DEFAULT_DRAFTER.name})")
    add_trust_remote_code_argument(parser)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--num-assistant-tokens", type=int, default=None, help="draft length K (default: drafter's)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="float32 (default): output identical to plain greedy; bf16 verification of several "
        "tokens is slow on CPUs without bf16 matmul units (see README)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each method, alternated")
    add_drafter_dtype_argument(parser, default="auto")
    add_small_batch_argument(parser)


def run(args):
    drafter_path = args.drafter or DEFAULT_DRAFTER
    if args.drafter is None and not (DEFAULT_DRAFTER / "config.json").is_file():
        raise SystemExit(
            f"no shipped drafter at {DEFAULT_DRAFTER}: pass --drafter DIR_OR_HUB_ID (train one with "
            "`hf-eagle31 prepare-data` and `hf-eagle31 train`, see examples/)."
        )
    torch.manual_seed(0)
    target, tokenizer = load_target(args.target, dtype=getattr(torch, args.dtype))
    small_batch = apply_small_batch_argument(args, target)
    drafter = load_drafter(
        str(drafter_path), target, trust_remote_code=args.trust_remote_code, dtype=drafter_dtype(args, target.device)
    )
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": args.prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, add_special_tokens=False).input_ids
    kwargs = {"max_new_tokens": args.max_new_tokens, "num_assistant_tokens": args.num_assistant_tokens}

    plain_runs, drafter_runs = [], []
    with TargetForwardTimer(target) as timer:
        timed_generate(target, ids, timer, max_new_tokens=8)  # warm-up
        timed_generate(target, ids, timer, drafter=drafter, max_new_tokens=8)
        for _ in range(max(1, args.repeats)):
            plain_runs.append(timed_generate(target, ids, timer, max_new_tokens=args.max_new_tokens))
            drafter_runs.append(timed_generate(target, ids, timer, drafter=drafter, **kwargs))

    answer = drafter_runs[-1].new_tokens
    plain_tps = [len(r.new_tokens) / r.wall_s for r in plain_runs]
    drafter_tps = [len(r.new_tokens) / r.wall_s for r in drafter_runs]
    stats = drafter_runs[-1].stats
    print(
        f"target: {args.target or 'smollm2-135m-instruct'} ({args.dtype}); drafter: {drafter_path} "
        f"({str(drafter.dtype).removeprefix('torch.')})" + ("; small-batch linears on" if small_batch else "")
    )
    print(f"user: {args.prompt}")
    print(f"assistant: {tokenizer.decode(answer, skip_special_tokens=True).strip()}")
    chain = args.num_assistant_tokens or drafter.generation_config.num_assistant_tokens
    copy = drafter.generation_config.prompt_lookup_num_tokens
    print(
        f"tau {stats.tau:.2f} tokens per target forward (drafted {sum(stats.draft_lengths) / max(stats.cycles, 1):.2f} "
        f"tokens per cycle: chains of at most K = {chain}"
        + (f", copies of up to {copy}" if copy else "")
        + f"; {stats.copied_cycles} cycles copied from the context), "
        f"acceptance per depth {[round(a, 2) for a in stats.acceptance_per_depth if a is not None]}"
    )
    print(
        f"plain greedy {statistics.median(plain_tps):.1f} tok/s, with drafter {statistics.median(drafter_tps):.1f} "
        f"tok/s: speed-up x{statistics.median(d / p for d, p in zip(drafter_tps, plain_tps)):.2f} "
        f"(median of {len(plain_tps)} alternated runs)"
    )
    same = all(r.new_tokens == plain_runs[0].new_tokens for r in drafter_runs)
    print(
        "answer identical to plain greedy: "
        + (
            "yes"
            if same
            else "no (bf16 verification of several tokens at "
            "once rounds differently from one-token steps; use --dtype float32 for bit-exact output)"
        )
    )
    return 0
