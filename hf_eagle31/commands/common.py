# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
What the `hf-eagle31` commands share: one-line error reports, `--json` reports, the package's log messages on the
terminal while a command runs, and the arguments and loaders of the commands that run a target with drafters
(`eval`, `bench`, `drift`, `demo`, `info`). Part of the command layer: the library never imports it.
"""

import argparse
import json
import math
import os
import shutil

import torch

from ..errors import InputError
from ..evaluation.calibration import DRIFT_THRESHOLD, Calibration, forward_workload
from ..evaluation.policies import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_COPY_TOKENS, DRAFTING_POLICIES, drafting_policy
from ..evaluation.prompts import read_prompt_file, suite_prompts
from ..evaluation.timing import compile_target_generation
from ..loading import native_bf16
from ..small_batch import enable, wanted
from ..targets import load_target


# ---------------------------------------------------------------------------------------------- errors and reports


def temperature_value(text):
    """argparse type of --temperature: a finite number >= 0 (0 = greedy)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid temperature {text!r}: pass a number >= 0") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (0 = greedy), got {text}")
    return value


def unit_interval(text):
    """argparse type of a probability threshold: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid threshold {text!r}: pass a number in [0, 1)") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (0 = off), got {text}")
    return value


def positive_int(text):
    """argparse type: an integer >= 1 (counts and sizes where 0 or a negative number means nothing sensible)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def write_json_report(path, report, announce=True):
    """Writes a command's report as indented JSON (creating the folder) and, with `announce`, prints `wrote PATH`.
    `-` writes it to stdout."""
    if str(path) == "-":
        print(json.dumps(report, indent=1))
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    if announce:
        print(f"wrote {path}")
    return path


# ---------------------------------------------------------------------------------------------- arguments


def add_target_argument(parser):
    parser.add_argument(
        "--target", default=None, help="target model: Hub id, folder or .gguf (default: embedded SmolLM2-135M-Instruct)"
    )


def add_trust_remote_code_argument(parser):
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let a --drafter that is not an hf-eagle31 checkpoint run its own code (hf-eagle31 "
        "drafters load with this package's classes and never need it)",
    )


def add_drafter_dtype_argument(parser, default="same"):
    parser.add_argument(
        "--drafter-dtype",
        default=default,
        choices=["same", "auto", "float32", "bfloat16"],
        help=f"drafter dtype (default: {default}; same = the target's, auto = bf16 where bf16 "
        "matmuls are native). The target verifies every token, so a bf16 drafter beside an "
        "fp32 target keeps greedy output exact and halves the drafter's weight traffic",
    )


def add_compile_argument(parser):
    parser.add_argument(
        "--compile-drafter",
        action="store_true",
        help="run the drafter's forward through torch.compile(dynamic=True) (compiles on first use, "
        "seconds per shape family; see benchmarks/chain_step_cost.py for what it saves)",
    )
    parser.add_argument(
        "--compile-target",
        action="store_true",
        help="every method (plain, prompt lookup, drafter) decodes with a static target cache and the "
        "target's forward compiled by generate (a StaticCache per call + compile_config; "
        "minutes of compilation on a CPU, excluded by the warm-up)",
    )


def _require_compiler(device, flag):
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++")):
        raise InputError(
            f"{flag} needs a C++ compiler on the PATH for torch.compile on the CPU: install g++ (or set "
            "CXX), or drop the flag."
        )


def apply_compile_argument(args, drafter, target):
    """`--compile-drafter`: `drafter.forward = torch.compile(drafter.forward, dynamic=True)`; `--compile-target`:
    `compile_target_generation(target)`. Returns `{"drafter": bool, "target": bool}` (what was compiled). Refused
    in one line where torch.compile's CPU backend has no C++ compiler to call."""
    done = {
        "drafter": bool(getattr(args, "compile_drafter", False)),
        "target": bool(getattr(args, "compile_target", False)),
    }
    if done["drafter"]:
        _require_compiler(drafter.device, "--compile-drafter")
        drafter.forward = torch.compile(drafter.forward, dynamic=True)
    if done["target"]:
        _require_compiler(target.device, "--compile-target")
        compile_target_generation(target)
    return done


def add_json_argument(parser):
    parser.add_argument("--json", default=None, help="write the results as JSON here (- : to stdout)")


def add_common_arguments(parser, multiple_drafters=False):
    """The target, drafter(s), prompts, chat template and dtype options of `eval`, `bench` and `drift`."""
    add_target_argument(parser)
    if multiple_drafters:
        parser.add_argument(
            "--drafter",
            action="append",
            required=True,
            help="drafter checkpoint (folder or Hub id); repeat to compare drafters side by side",
        )
    else:
        parser.add_argument("--drafter", required=True, help="drafter checkpoint (folder or Hub id)")
    add_trust_remote_code_argument(parser)
    parser.add_argument("--prompts", default=None, help="JSON-lines prompts: 'prompt', 'turns' or 'messages' per line")
    parser.add_argument(
        "--suite",
        default="standard",
        choices=["standard", "perturbed", "long", "all", "heldout"],
        help="prompt suite used when no --prompts file is given (default standard)",
    )
    parser.add_argument(
        "--sources",
        nargs="+",
        default=None,
        help="restrict the suites to these sources (e.g. mtbench gsm8k; long: pg-essays hotpotqa)",
    )
    parser.add_argument(
        "--long-lengths",
        type=int,
        nargs="+",
        default=None,
        help="prompt lengths in tokens for the long suite (default 2048 4096 7168)",
    )

    parser.add_argument(
        "--num-prompts",
        type=int,
        default=None,
        help="first N prompts of --prompts; with a suite, N per source (per source and length for long)",
    )
    parser.add_argument(
        "--chat-template",
        default=None,
        help="a .jinja file (or 'plain' / 'alpaca' text format) replacing the tokenizer's chat template",
    )
    parser.add_argument("--system-prompt", default=None, help="system prompt for every prompt")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="target/drafter dtype")
    add_drafter_dtype_argument(parser)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    add_small_batch_argument(parser)


def add_small_batch_argument(parser):
    parser.add_argument(
        "--small-batch-linears",
        default="auto",
        choices=["auto", "on", "off"],
        help="route the target's fp32 CPU linear layers through the product that makes a K+1-token "
        "verification cost about a 1-token forward (hf_eagle31.small_batch; auto: on for an "
        "fp32 target on the CPU)",
    )


def apply_small_batch_argument(args, target):
    """Enables `small_batch` on `target` as `--small-batch-linears` asks; returns whether it is on."""
    if wanted(getattr(args, "small_batch_linears", "off"), target):
        return enable(target) > 0
    return False


# ---------------------------------------------------------------------------------------------- loaders


def policies_from_args(args):
    """`{name: generate options}` from `--policies a,b --confidence-threshold T --copy-tokens N` (empty: none)."""
    names = [n.strip() for n in args.policies.split(",") if n.strip()] if args.policies else []
    return {name: drafting_policy(name, args.confidence_threshold, args.copy_tokens) for name in names}


def add_policy_arguments(parser):
    parser.add_argument(
        "--policies",
        default=None,
        help=f"comma-separated drafting policies to compare beside each drafter as shipped "
        f"({', '.join(DRAFTING_POLICIES)}; a confidence policy may set its own threshold: "
        "confidence@0.2)",
    )
    parser.add_argument(
        "--confidence-threshold",
        type=unit_interval,
        default=DEFAULT_CONFIDENCE_THRESHOLD,
        help="assistant_confidence_threshold of the confidence policies without their own @<threshold> "
        f"(default {DEFAULT_CONFIDENCE_THRESHOLD}, the shipped drafters' value)",
    )
    parser.add_argument(
        "--copy-tokens",
        type=int,
        default=DEFAULT_COPY_TOKENS,
        help=f"prompt_lookup_num_tokens of the copy policies: longest copied span (default {DEFAULT_COPY_TOKENS})",
    )


def load_target_for_cli(args):
    """`(model, tokenizer)` for `--target` (None = the embedded SmolLM2-135M-Instruct) in `--dtype`, with
    `--small-batch-linears` applied."""
    dtype = getattr(torch, args.dtype)
    device = getattr(args, "device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
    target, tokenizer = load_target(args.target, dtype=dtype, device=device)
    apply_small_batch_argument(args, target)
    return target, tokenizer


def drafter_dtype(args, device="cpu"):
    """`--drafter-dtype` as a torch dtype (None = the target's; "auto" = bf16 where bf16 matmuls are native)."""
    value = getattr(args, "drafter_dtype", "same")
    if value == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    return None if value in (None, "same") else getattr(torch, value)


def prompts_from_args(args, tokenizer, default_suite="standard"):
    """The prompts of `--prompts FILE` (first `--num-prompts`), or of `--suite` / `--sources` / `--long-lengths`."""
    if getattr(args, "prompts", None):
        return read_prompt_file(args.prompts, args.num_prompts)
    return suite_prompts(
        getattr(args, "suite", None) or default_suite,
        tokenizer,
        args.num_prompts,
        getattr(args, "long_lengths", None),
        args.chat_template,
        getattr(args, "sources", None),
    )


def add_calibration_arguments(parser):
    """`--repeats`, `--strict` and `--max-drift`, shared by `bench` and `eval`."""
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="passes over the prompts; speeds are the median over passes, with min/max (default 3)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit non-zero instead of flagging numbers when the calibration drifted or the machine "
        "was busy at the start",
    )
    parser.add_argument(
        "--max-drift",
        type=float,
        default=DRIFT_THRESHOLD,
        help=f"calibration drift that flags a run (default {DRIFT_THRESHOLD}: 15%%)",
    )


def calibration_from_args(args, target) -> Calibration:
    """The calibration of a `bench` / `eval` run: a fixed forward of `target`, with `--max-drift`."""
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}.")
    return Calibration(forward_workload(target), drift_threshold=args.max_drift, device=target.device)
