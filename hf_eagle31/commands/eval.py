# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 eval`: tau / acceptance per depth and speed of drafters on the standard, perturbed and long suites."""

import argparse
import os

from ..assets import cache_dir
from ..evaluation import evaluate, format_table, teacher_forced
from ..evaluation.calibration import format_calibration
from ..evaluation.policies import DRAFTING_POLICIES, drafting_policy
from ..loading import load_drafters
from .common import (
    SEED,
    WITHIN_ANSWER,
    WITHIN_CONTEXT,
    Bound,
    When,
    add,
    add_calibration_arguments,
    add_common_arguments,
    add_count_argument,
    add_fact,
    add_json_argument,
    add_policy_arguments,
    calibration_from_args,
    check_answer_cache,
    check_policies,
    drafter_options,
    load_target_for_cli,
    policies_from_args,
    prompts_from_args,
    restrict,
    temperature_value,
    write_json_report,
)


def sampling(args) -> bool:
    """Whether eval samples: --do-sample, or a --temperature above 0 (0 is greedy)."""
    return bool(args.do_sample or (args.temperature or 0) > 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, multiple_drafters=True)
    add_count_argument(parser, "--max-new-tokens", default=128, at_most=WITHIN_CONTEXT)
    add_count_argument(
        parser,
        "--num-assistant-tokens",
        nargs="+",
        default=None,
        at_most=WITHIN_ANSWER,
        help="draft length K, or several to measure tau/speed per K (default: the drafter's own)",
    )
    add(
        parser,
        "--do-sample",
        action="store_true",
        excludes=When("sampling needs a temperature > 0 (0 = greedy)", temperature=0.0),
        help="sample (speculative sampling) instead of greedy",
    )
    add(
        parser,
        "--temperature",
        type=temperature_value,
        default=None,
        help="sampling temperature (above 0 implies --do-sample; 0 = greedy)",
    )
    add_fact(parser, "seeded", lambda ctx: sampling(ctx.args) or ctx.teacher_forced)
    add(
        parser,
        "--seed",
        type=SEED,
        default=0,
        applies=When("it seeds sampling (--do-sample) and the bootstrap (--teacher-forced)", seeded=True),
    )
    add_policy_arguments(parser)
    add(
        parser,
        "--policy",
        default=None,
        check=check_policies,
        help=f"run every drafter under this drafting policy ({', '.join(DRAFTING_POLICIES)}; "
        "confidence ones may add @<threshold>) instead of its saved generation_config.json "
        "(e.g. to compare checkpoints and a shipped drafter under one policy)",
    )
    add_calibration_arguments(parser)
    add_json_argument(parser)
    add_teacher_forced_arguments(parser)
    restrict(
        parser,
        When("teacher-forced evaluation runs no generate", teacher_forced=False),
        "--num-assistant-tokens",
        "--do-sample",
        "--temperature",
        "--policies",
        "--confidence-threshold",
        "--copy-tokens",
        "--policy",
        "--repeats",
        "--strict",
        "--max-drift",
    )


def run(args: argparse.Namespace) -> int:
    if args.teacher_forced:
        return run_teacher_forced(args)
    do_sample = sampling(args)
    policies = policies_from_args(args)  # before loading anything: a misspelt policy fails at once
    drafting = drafting_policy(args.policy, args.confidence_threshold, args.copy_tokens) if args.policy else None
    target, tokenizer = load_target_for_cli(args)
    calibration = calibration_from_args(args, target)
    calibration.check_load_at_start(args.strict)
    drafters = load_drafters(args.drafter, target, **drafter_options(args))
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


# ---------------------------------------------------------------------------------------------- eval --teacher-forced
# The CLI of `hf_eagle31.evaluation.teacher_forced`: per-depth teacher-forced agreement with intervals.


def add_teacher_forced_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("teacher-forced evaluation (--teacher-forced)")
    add(
        group,
        "--teacher-forced",
        action="store_true",
        help="per-depth teacher-forced top-k agreement, chain/tree accepted length and cluster-bootstrap intervals "
        "(paired against the first --drafter) instead of generate-based tau; --suite heldout: held-out ShareGPT "
        "first turns",
    )
    only = When(teacher_forced=True)
    add_count_argument(
        group,
        "--max-depth",
        default=8,
        applies=only,
        # depth j scores the answer positions t with t + j inside the answer: an answer of A tokens has A - j
        at_most=Bound(
            lambda ctx: ctx.max_new_tokens - 1, "--max-new-tokens - 1 (deeper depths have no position)", defaults=False
        ),
        help="teacher-forced depths 1..N (default 8)",
    )
    add_count_argument(
        group,
        "--top-k",
        nargs="+",
        default=[1, 2, 4, 8],
        applies=only,
        # the rank is taken in the draft vocabulary: a k that covers all of it agrees on every drafted token
        at_most=Bound(
            lambda ctx: ctx.draft_vocab_size - 1 if ctx.draft_vocab_size else None,
            "the drafters' draft vocabulary size - 1 (a top-k holding the whole draft vocabulary always agrees)",
        ),
        help="top-k agreements (default 1 2 4 8)",
    )
    add_count_argument(group, "--bootstrap", default=2000, applies=only, help="bootstrap resamples (default 2000)")
    add_count_argument(
        group,
        "--answer-batch-tokens",
        default=4096,
        applies=only,
        help="answers not cached are generated in left-padded batches of at most this many prompt + answer tokens "
        "(default 4096)",
    )
    add(
        group,
        "--answer-cache",
        default=None,
        check=check_answer_cache,
        applies=only,
        help="directory of the cached greedy answers (default $HF_EAGLE31_CACHE/teacher_forced_answers; 'none' keeps "
        "them in memory)",
    )


def run_teacher_forced(args: argparse.Namespace) -> int:
    target, tokenizer = load_target_for_cli(args)
    drafters = load_drafters(args.drafter, target, **drafter_options(args))
    short = [os.path.basename(os.path.normpath(label)) for label in drafters]  # table labels: folder names
    if len(set(short)) == len(short):
        drafters = dict(zip(short, drafters.values()))
    prompts = prompts_from_args(args, tokenizer)
    cache = args.answer_cache or os.path.join(cache_dir(), "teacher_forced_answers")
    summary = teacher_forced.evaluate_teacher_forced(
        target,
        tokenizer,
        drafters,
        prompts,
        max_new_tokens=args.max_new_tokens,
        max_depth=args.max_depth,
        answer_cache=None if cache.lower() == "none" else cache,
        top_ks=args.top_k,
        num_resamples=args.bootstrap,
        seed=args.seed,
        system_prompt=args.system_prompt,
        chat_template=args.chat_template,
        progress=True,
        batch_tokens=args.answer_batch_tokens,
    )
    where = args.prompts or f"suite {args.suite}"
    print(teacher_forced.format_summary(summary, title=f"teacher-forced, {where}"))
    for name, part in summary.get("groups", {}).items():
        shared = {k: summary[k] for k in ("drafters", "top_ks", "confidence", "num_resamples")}
        print()
        print(teacher_forced.format_summary({**part, **shared}, metrics=["acc@1", "tau_chain"], title=f"group {name}"))
    cost = summary["cost"]
    print(
        f"\ncost: answers {cost['answers_cpu_s']:.1f} CPU-s ({summary['answer_cache']['hits']} cached, "
        f"{summary['answer_cache']['misses']} generated), teacher-forced eval {cost['eval_cpu_s']:.1f} CPU-s for "
        f"{summary['positions_per_depth'][0]} depth-1 positions; target self-consistency "
        f"{summary['target_self_consistency']:.4f}"
    )
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        settings.update(target=args.target or "smollm2-135m-instruct")
        write_json_report(args.json, {"settings": settings, **summary})
    return 0
