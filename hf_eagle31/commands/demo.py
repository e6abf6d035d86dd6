# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 demo`: answer chat prompts with `target.generate(assistant_model=drafter)` and measure the speed-up.

Loads the target (default: the embedded SmolLM2-135M-Instruct) and a drafter (default: the EAGLE-3.1 drafter
shipped in `hf_eagle31/drafters/`, with the drafting policy of its generation_config.json), then times plain greedy
decoding and drafter decoding on each prompt in the same run, alternating them, and prints the policy, the first
answer, τ and the speed-up: the median over prompts of each prompt's median over alternated runs (one short answer
is too noisy a measurement to quote).
"""

import statistics

import torch

from ..evaluation.timing import TargetForwardTimer, timed_generate
from ..loading import DEFAULT_DRAFTER, load_drafter
from ..modeling import SpeculationStats
from ..targets import load_target
from .common import (
    WITHIN_ANSWER,
    WITHIN_CONTEXT,
    add,
    add_count_argument,
    add_drafter_argument,
    add_drafter_dtype_argument,
    add_small_batch_argument,
    add_target_argument,
    add_trust_remote_code_argument,
    apply_small_batch_argument,
    check_text,
    drafter_options,
)


DEFAULT_PROMPTS = (
    "Explain in a few sentences why the sky is blue.",
    "Write a Python function that checks whether a string is a palindrome, and explain it.",
    "Give me three tips for staying focused while studying, with one sentence on each.",
)


def describe_policy(config, num_assistant_tokens=None) -> str:
    """The drafting policy a drafter's generation config selects, in words (what `demo` ran)."""
    copy = config.prompt_lookup_num_tokens or 0
    copied = f" + context copy of up to {copy} tokens" if copy else ""
    if getattr(config, "draft_tree", None) == "auto":
        return (
            f"auto: per cycle the shape with the most expected tokens per second under costs measured on this "
            f"machine (no draft, a chain or a tree of up to depth {config.tree_depth}, top-{config.tree_topk}, "
            f"{config.tree_total_tokens} nodes){copied}"
        )
    if getattr(config, "draft_tree", None):
        gate = getattr(config, "tree_min_probability", None) or 0
        deeper = f", a further depth only while its best node is >= {gate:g} likely" if gate else ""
        return (
            f"dynamic draft tree (depth {config.tree_depth}, top-{config.tree_topk} expansion, "
            f"{config.tree_total_tokens} nodes verified per cycle{deeper}){copied}"
        )
    k = num_assistant_tokens or config.num_assistant_tokens
    threshold = config.assistant_confidence_threshold or 0
    bound = f", stopped below confidence {threshold:g}" if threshold else ""
    return f"chain of at most K = {k}{bound}{copied}"


def add_arguments(parser):
    add_target_argument(parser)
    add_drafter_argument(
        parser, "--drafter", default=None, help=f"drafter dir or Hub id (default: {DEFAULT_DRAFTER.name})"
    )
    add_trust_remote_code_argument(parser)
    add(
        parser,
        "--prompt",
        action="append",
        default=None,
        check=check_text,
        help="a user message (repeat for several; default: three built-in prompts); the speed-up is the median "
        "over prompts of each prompt's median over alternated runs",
    )
    add_count_argument(parser, "--max-new-tokens", default=128, at_most=WITHIN_CONTEXT)
    add_count_argument(
        parser,
        "--num-assistant-tokens",
        default=None,
        at_most=WITHIN_ANSWER,
        help="draft length K (default: drafter's)",
    )
    add(
        parser,
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="float32 (default): output identical to plain greedy; bf16 verification of several "
        "tokens is slow on CPUs without bf16 matmul units (see README)",
    )
    add_count_argument(parser, "--repeats", default=2, help="timed runs of each method per prompt, alternated")
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
    drafter = load_drafter(str(drafter_path), target, **drafter_options(args, target.device))
    prompts = args.prompt or list(DEFAULT_PROMPTS)
    kwargs = {"max_new_tokens": args.max_new_tokens, "num_assistant_tokens": args.num_assistant_tokens}
    speedups, plain_tps, drafter_tps, runs, identical = [], [], [], [], True
    with TargetForwardTimer(target) as timer:
        for index, prompt in enumerate(prompts):
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            ids = tokenizer(text, add_special_tokens=False).input_ids
            if index == 0:  # warm-up
                timed_generate(target, ids, timer, max_new_tokens=8)
                timed_generate(target, ids, timer, drafter=drafter, max_new_tokens=8)
            ratios = []
            for _ in range(max(1, args.repeats)):
                plain = timed_generate(target, ids, timer, max_new_tokens=args.max_new_tokens)
                assisted = timed_generate(target, ids, timer, drafter=drafter, **kwargs)
                plain_tps.append(len(plain.new_tokens) / plain.wall_s)
                drafter_tps.append(len(assisted.new_tokens) / assisted.wall_s)
                ratios.append(drafter_tps[-1] / plain_tps[-1])
                identical = identical and assisted.new_tokens == plain.new_tokens
            speedups.append(statistics.median(ratios))
            runs.append(assisted)

    stats = SpeculationStats.pooled([run.stats for run in runs])
    print(
        f"target: {args.target or 'smollm2-135m-instruct'} ({args.dtype}); drafter: {drafter_path} "
        f"({str(drafter.dtype).removeprefix('torch.')})" + ("; small-batch linears on" if small_batch else "")
    )
    print(f"drafting policy: {describe_policy(drafter.generation_config, args.num_assistant_tokens)}")
    print(f"user: {prompts[0]}")
    print(f"assistant: {tokenizer.decode(runs[0].new_tokens, skip_special_tokens=True).strip()}")
    if stats.cycles:
        print(
            f"tau {stats.tau:.2f} tokens per target forward over {len(prompts)} prompt(s) "
            f"({stats.drafted_per_cycle:.2f} tokens verified per cycle; {stats.copied_cycles} of {stats.cycles} "
            "cycles copied from the context)"
        )
    if stats.shapes:  # the auto policy: which shapes it chose
        print(f"shapes chosen: {stats.shape_summary()}")
    print(
        f"plain greedy {statistics.median(plain_tps):.1f} tok/s, with drafter {statistics.median(drafter_tps):.1f} "
        f"tok/s: speed-up x{statistics.median(speedups):.2f} (median over {len(prompts)} prompt(s) of "
        f"{max(1, args.repeats)} alternated runs each; per prompt: " + ", ".join(f"x{s:.2f}" for s in speedups) + ")"
    )
    print(
        "answers identical to plain greedy: "
        + (
            "yes"
            if identical
            else "no (bf16 verification of several tokens at once rounds differently from one-token steps; "
            "use --dtype float32 for bit-exact output)"
        )
    )
    return 0
