# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 eval`: tau / acceptance per depth and speed of drafters on the standard, perturbed and long suites."""

import argparse

from ..evaluation import evaluate, format_table
from ..evaluation.calibration import format_calibration
from ..evaluation.policies import DRAFTING_POLICIES, drafting_policy
from ..loading import load_drafters
from .common import (
    add_calibration_arguments,
    add_common_arguments,
    add_json_argument,
    add_policy_arguments,
    calibration_from_args,
    drafter_dtype,
    load_target_for_cli,
    policies_from_args,
    prompts_from_args,
    temperature_value,
    write_json_report,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, multiple_drafters=True)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument(
        "--num-assistant-tokens",
        type=int,
        nargs="+",
        default=None,
        help="draft length K, or several to measure tau/speed per K (default: the drafter's own)",
    )
    parser.add_argument("--do-sample", action="store_true", help="sample (speculative sampling) instead of greedy")
    parser.add_argument(
        "--temperature", type=temperature_value, default=None, help="sampling temperature (implies --do-sample)"
    )
    parser.add_argument("--seed", type=int, default=0)
    add_policy_arguments(parser)
    parser.add_argument(
        "--policy",
        default=None,
        help=f"run every drafter under this drafting policy ({', '.join(DRAFTING_POLICIES)}; "
        "confidence ones may add @<threshold>) instead of its saved generation_config.json "
        "(e.g. to compare checkpoints and a shipped drafter under one policy)",
    )
    add_calibration_arguments(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    do_sample = args.do_sample or args.temperature is not None
    policies = policies_from_args(args)  # before loading anything: a misspelt policy fails at once
    drafting = drafting_policy(args.policy, args.confidence_threshold, args.copy_tokens) if args.policy else None
    target, tokenizer = load_target_for_cli(args)
    calibration = calibration_from_args(args, target)
    calibration.check_load_at_start(args.strict)
    drafters = load_drafters(args.drafter, target, trust_remote_code=args.trust_remote_code, dtype=drafter_dtype(args))
    prompts = prompts_from_args(args, tokenizer)
    results, _ = evaluate(
        target,
        tokenizer,
        drafters,
        prompts,
        max_new_tokens=args.max_new_tokens,
        num_assistant_tokens=args.num_assistant_tokens,
        do_sample=do_sample,
        temperature=args.temperature,
        system_prompt=args.system_prompt,
        chat_template=args.chat_template,
        seed=args.seed,
        repeats=args.repeats,
        calibration=calibration,
        policies=policies,
        drafting=drafting,
    )
    calibration.check(args.strict)
    print(format_table(results))
    print(format_calibration(calibration.summary()))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        settings.update(do_sample=do_sample, target=args.target or "smollm2-135m-instruct")
        report = {"settings": settings, "results": results, "calibration": calibration.summary()}
        write_json_report(args.json, report)
    return 0
