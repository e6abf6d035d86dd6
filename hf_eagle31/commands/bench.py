# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 bench`: plain greedy vs prompt lookup vs drafter (and drafting policies), side by side."""

import torch

from ..evaluation.batch_bench import batch_benchmark, format_batch_report
from ..evaluation.bench import benchmark, format_report
from ..evaluation.prompts import render_prompt
from ..loading import load_drafter
from ..small_batch import is_enabled as small_batch_enabled
from .common import (
    WITHIN_ANSWER,
    WITHIN_CONTEXT,
    IntegerList,
    When,
    Within,
    add,
    add_calibration_arguments,
    add_common_arguments,
    add_compile_argument,
    add_count_argument,
    add_json_argument,
    add_policy_arguments,
    apply_compile_argument,
    calibration_from_args,
    check_policies,
    drafter_options,
    load_target_for_cli,
    policies_from_args,
    prompts_from_args,
    write_json_report,
)


def add_arguments(parser):
    add_common_arguments(parser)
    add_count_argument(parser, "--max-new-tokens", default=128, at_most=WITHIN_CONTEXT)
    add_count_argument(
        parser,
        "--num-assistant-tokens",
        default=None,
        at_most=WITHIN_ANSWER,
        help="drafter's draft length K (default: the drafter's generation_config)",
    )
    add_count_argument(
        parser,
        "--prompt-lookup-tokens",
        default=10,
        at_most=WITHIN_ANSWER,
        help="HF prompt_lookup_num_tokens (default 10)",
    )
    add_policy_arguments(parser)
    add_calibration_arguments(parser)
    add_compile_argument(parser)
    add(
        parser,
        "--profile",
        action="store_true",
        excludes=When("profiling compares against bare eager target forwards", compile_target=True),
        help="split one drafter pass's time per cycle and compare it with bare forwards (the ceiling "
        "speed-up at the measured tau)",
    )
    add(
        parser,
        "--profile-policy",
        default=None,
        check=check_policies,
        applies=When(profile=True) & When("it names one of them", policies=True),
        within=Within(lambda ctx: ctx.policy_names, "one of --policies", "constant"),
        help="with --profile: profile this policy (one of --policies) instead of the drafter as "
        "configured, e.g. --policies constant --profile-policy constant",
    )
    add(
        parser,
        "--batch-size",
        type=IntegerList(1),
        default=None,
        excludes=(
            When("batches compare plain batched greedy with the drafter as shipped", policies=True),
            When("profiling splits one prompt's cycles", profile=True),
            When("compiled targets run one prompt at a time here", compile_target=True),
            When("compiled drafters run one prompt at a time here", compile_drafter=True),
        ),
        help="plain batched greedy vs the drafter inside generate at these batch sizes, e.g. 1,4,8,16 (the prompts "
        "in consecutive batches, padded on the left; tok/s summed over rows)",
    )
    add(
        parser,
        "--batch-token-budgets",
        type=IntegerList(1),
        default=None,
        applies=When("it compares budgets of batches", batch_size=True),
        help="with --batch-size: also the drafter with the batch rule's token budget set to each value (K = "
        "min(K, budget // B - 1)), e.g. 8,32,64, to choose BATCH_TOKEN_BUDGET",
    )
    add_json_argument(parser)


def run(args):
    if args.batch_size is not None:
        return run_batches(args)
    policies = policies_from_args(args)
    target, tokenizer = load_target_for_cli(args)
    calibration = calibration_from_args(args, target)
    calibration.check_load_at_start(args.strict)
    drafter = load_drafter(args.drafter, target, **drafter_options(args))
    compiled = apply_compile_argument(args, drafter, target)
    prompts = prompts_from_args(args, tokenizer)
    rendered = [render_prompt(tokenizer, p, (), args.system_prompt, args.chat_template) for p in prompts]
    torch.manual_seed(0)
    report = benchmark(
        target,
        drafter,
        rendered,
        max_new_tokens=args.max_new_tokens,
        num_assistant_tokens=args.num_assistant_tokens,
        prompt_lookup_tokens=args.prompt_lookup_tokens,
        repeats=args.repeats,
        calibration=calibration,
        profile=args.profile,
        policies=policies,
        profile_policy=args.profile_policy,
        static_cache=compiled["target"],
    )
    calibration.check(args.strict)
    report["settings"] = {
        "target": args.target or "smollm2-135m-instruct",
        "drafter": args.drafter,
        "prompts": args.prompts,
        "prompt_ids": [p.id for p in prompts],
        "max_new_tokens": args.max_new_tokens,
        "num_assistant_tokens": args.num_assistant_tokens,
        "prompt_lookup_tokens": args.prompt_lookup_tokens,
        "dtype": args.dtype,
        "drafter_dtype": str(drafter.dtype).removeprefix("torch."),
        "device": str(target.device),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "strict": args.strict,
        "max_drift": args.max_drift,
        "profile": args.profile,
        "profile_policy": args.profile_policy,
        "small_batch_linears": small_batch_enabled(target),
        "policies": policies,
        "compile_drafter": compiled["drafter"],
        "compile_target": compiled["target"],
    }
    print(format_report(report))
    if args.json:
        write_json_report(args.json, report)
    return 0


def run_batches(args):
    """`bench --batch-size B[,B...]`: `evaluation.batch_bench.batch_benchmark`."""
    target, tokenizer = load_target_for_cli(args)
    calibration = calibration_from_args(args, target)
    calibration.check_load_at_start(args.strict)
    drafter = load_drafter(args.drafter, target, **drafter_options(args))
    prompts = prompts_from_args(args, tokenizer)
    rendered = [render_prompt(tokenizer, p, (), args.system_prompt, args.chat_template) for p in prompts]
    torch.manual_seed(0)
    report = batch_benchmark(
        target,
        drafter,
        tokenizer,
        rendered,
        args.batch_size,
        max_new_tokens=args.max_new_tokens,
        num_assistant_tokens=args.num_assistant_tokens,
        budgets=args.batch_token_budgets,
        repeats=args.repeats,
        calibration=calibration,
    )
    calibration.check(args.strict)
    report["settings"] = {
        "target": args.target or "smollm2-135m-instruct",
        "drafter": args.drafter,
        "prompts": args.prompts,
        "prompt_ids": [p.id for p in prompts],
        "max_new_tokens": args.max_new_tokens,
        "num_assistant_tokens": args.num_assistant_tokens,
        "batch_sizes": args.batch_size,
        "batch_token_budgets": args.batch_token_budgets,
        "dtype": args.dtype,
        "drafter_dtype": str(drafter.dtype).removeprefix("torch."),
        "device": str(target.device),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "strict": args.strict,
        "max_drift": args.max_drift,
        "small_batch_linears": small_batch_enabled(target),
    }
    print(format_batch_report(report))
    if args.json:
        write_json_report(args.json, report)
    return 0
