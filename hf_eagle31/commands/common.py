# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
What the `hf-eagle31` commands share: the arguments several verbs take, each with its check (`checked`), `--json`
reports, and the loaders of the commands that run a target with drafters (`eval`, `bench`, `drift`, `demo`, `info`).
Part of the command layer: the library never imports it.
"""

import argparse
import json
import math
import os
import shutil

import torch

from ..data.suites import load_chat_template
from ..errors import InputError
from ..evaluation.calibration import DRIFT_THRESHOLD, Calibration, forward_workload
from ..evaluation.policies import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_COPY_TOKENS, DRAFTING_POLICIES, drafting_policy
from ..evaluation.prompts import read_prompt_file, suite_prompts
from ..evaluation.timing import compile_target_generation
from ..loading import native_bf16
from ..modeling.checkpoint_formats import NORM_OUTPUT_SEMANTICS
from ..small_batch import enable, wanted
from ..targets import load_target


# ---------------------------------------------------------------------------------------------- argument checks
# An argument's check is declared where the argument is added: an argparse `type=` (a malformed value: argparse's own
# `error:` line) or `checked(action, check)` (a well-formed value that cannot work: an existing file given as an output
# folder, a local model path that does not exist, a count below 1). The dispatcher runs the declared checks on the
# parsed values before the verb loads anything, so a typo never costs minutes of compute or a finished run. What needs
# several arguments or a loaded model is checked in the verb's `run`; the library checks what it is handed.


def checked(action, check, flag=None):
    """Declares `check(value, flag)` for the argument `action` (what `add_argument` returned); the dispatcher runs it
    on each parsed value that is not None (each item of a list). `flag` names the argument in messages (default:
    `--dest-with-dashes`). Returns `action`."""
    action.check = check
    action.check_flag = flag or "--" + action.dest.replace("_", "-")
    return action


def _number(text, kind, fix, valid, rule):
    """argparse type: `float(text)` when `valid(value)`, else argparse's one-line error (`rule`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {kind} {text!r}: pass {fix}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
    return value


def temperature_value(text):
    """argparse type of --temperature: a finite number >= 0 (0 = greedy)."""
    return _number(
        text, "temperature", "a number >= 0", lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0 (0 = greedy)"
    )


def unit_interval(text):
    """argparse type of a probability threshold: a number in [0, 1)."""
    return _number(text, "threshold", "a number in [0, 1)", lambda v: 0.0 <= v < 1.0, "in [0, 1) (0 = off)")


def positive_int(text):
    """argparse type: an integer >= 1 (counts and sizes where 0 or a negative number means nothing sensible)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def check_count(value, flag):
    """Check of a count where 0 or a negative number would silently mean something else (--num-prompts 0 ran one
    prompt)."""
    if value < 1:
        raise InputError(f"{flag} {value}: must be >= 1.")


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_output_path(path, flag, directory=True):
    """Raises a one-line InputError when `path` cannot be written (without creating anything)."""
    if path is None or (not directory and str(path) == "-"):  # "-": stdout
        return
    path = os.path.expanduser(str(path))
    if os.path.exists(path):
        if directory and not os.path.isdir(path):
            raise InputError(f"{flag} {path} is a file, not a directory: pass a directory path.")
        if not directory and os.path.isdir(path):
            raise InputError(
                f"{flag} {path} is a directory: pass a file path (e.g. {os.path.join(path, 'results.json')})."
            )
        if _read_only(path):
            raise InputError(f"{flag} {path} is on a read-only file system: pass a path on a writable one.")
        if not os.access(path, os.W_OK):
            raise InputError(f"{flag} {path} is not writable: pass a path you can write to.")
        return
    parent = _nearest_existing(path)
    if not os.path.isdir(parent):
        raise InputError(f"{flag} {path} cannot be created: {parent} is a file, not a directory.")
    if _read_only(parent):
        raise InputError(f"{flag} {path} cannot be created: {parent} is on a read-only file system.")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{flag} {path} cannot be created: {parent} is not writable.")


def _read_only(path) -> bool:
    """Whether `path` lies on a file system mounted read-only (root's writes fail there too, unlike permissions)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_output_file(path, flag):
    check_output_path(path, flag, directory=False)


def looks_like_local_path(name):
    """True for strings no Hub id looks like (absolute/relative/home paths, several slashes, file suffixes)."""
    name = str(name)
    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
        or name.endswith((".json", ".jsonl", ".safetensors", ".bin", ".gguf", ".jinja"))
    )


def check_model_path(name, flag):
    """A model / checkpoint argument: a local-looking path that does not exist fails here, not as a Hub id error."""
    if name is None:
        return
    if looks_like_local_path(name) and not os.path.exists(os.path.expanduser(str(name))):
        raise InputError(f"{flag} {name} does not exist: pass an existing directory (or a Hub id namespace/name).")


def check_chat_template(value, flag):
    """A mistyped template path is an error, never template text."""
    load_chat_template(value)


def add_count_argument(parser, *names, **kwargs):
    """An int argument checked by `check_count` (>= 1)."""
    return checked(parser.add_argument(*names, type=int, **kwargs), check_count)


def add_output_dir_argument(parser, *names, flag=None, **kwargs):
    """An output folder, refused before any compute when it is a file or cannot be created / written."""
    return checked(parser.add_argument(*names, **kwargs), check_output_path, flag)


def add_model_argument(parser, *names, flag=None, **kwargs):
    """A model or checkpoint (folder or Hub id), refused when it looks like a local path that does not exist."""
    return checked(parser.add_argument(*names, **kwargs), check_model_path, flag)


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


def add_target_argument(parser, help="target model: Hub id, folder or .gguf (default: embedded SmolLM2-135M-Instruct)"):
    add_model_argument(parser, "--target", default=None, help=help)


def add_trust_remote_code_argument(parser):
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let a --drafter that is not an hf-eagle31 checkpoint run its own code (hf-eagle31 "
        "drafters load with this package's classes and never need it)",
    )
    # EAGLE / SpecForge / vLLM / speculators drafters load converted in memory (`convert`'s rules), so the one
    # choice a SpecForge checkpoint can need is asked for here too (`loading.load_drafter`).
    parser.add_argument(
        "--norm-output-semantics",
        choices=NORM_OUTPUT_SEMANTICS,
        default=None,
        help="what norm_output: true means in a SpecForge (midlayer) --drafter that does not record it: "
        "post-norm-feed (SpecForge from PR #879) or pre-norm-feed (before it); see `hf-eagle31 convert --help`",
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
    checked(
        parser.add_argument("--json", default=None, help="write the results as JSON here (- : to stdout)"),
        check_output_file,
    )


def add_chat_template_argument(parser, help):
    checked(parser.add_argument("--chat-template", default=None, help=help), check_chat_template)


def add_common_arguments(parser, multiple_drafters=False):
    """The target, drafter(s), prompts, chat template and dtype options of `eval`, `bench` and `drift`."""
    add_target_argument(parser)
    if multiple_drafters:
        add_model_argument(
            parser,
            "--drafter",
            action="append",
            required=True,
            help="drafter checkpoint (folder or Hub id); repeat to compare drafters side by side",
        )
    else:
        add_model_argument(parser, "--drafter", required=True, help="drafter checkpoint (folder or Hub id)")
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
    add_count_argument(
        parser,
        "--long-lengths",
        nargs="+",
        default=None,
        help="prompt lengths in tokens for the long suite (default 2048 4096 7168)",
    )
    add_count_argument(
        parser,
        "--num-prompts",
        default=None,
        help="first N prompts of --prompts; with a suite, N per source (per source and length for long)",
    )
    add_chat_template_argument(
        parser, help="a .jinja file (or 'plain' / 'alpaca' text format) replacing the tokenizer's chat template"
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
    add_count_argument(
        parser,
        "--repeats",
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
    return Calibration(forward_workload(target), drift_threshold=args.max_drift, device=target.device)
