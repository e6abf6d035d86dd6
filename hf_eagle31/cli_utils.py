# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
What the `hf-eagle31` commands share: one-line error reports, `--json` reports, the package's log messages on the
terminal while a command runs, and the arguments and loaders of the commands that run a target with drafters
(`eval`, `bench`, `drift`, `demo`, `info`).

Library code never imports this module: a command module imports it inside its `add_cli_arguments` / `run_cli`.
This module in turn imports the library modules it uses inside the functions that use them: `cli.py` imports it at
startup, and a command's modules load only when that command runs.
"""

import argparse
import contextlib
import json
import logging
import os
import sys

import torch


EXIT_USAGE = 2  # argparse's code for bad arguments; bad input found later gets the same
# Bad input, reported in one line. OSError covers missing/unwritable files and transformers' "can't load" errors;
# ModuleNotFoundError an optional dependency that is not installed (matplotlib, peft).
EXPECTED_ERRORS = (ValueError, OSError, ModuleNotFoundError)
PACKAGE_LOGGER = "hf_eagle31"  # library modules log under it (`transformers.utils.logging.get_logger(__name__)`)


# ---------------------------------------------------------------------------------------------- errors and reports


def positive_int(text):
    """argparse type: an integer >= 1 (counts and sizes where 0 or a negative number means nothing sensible)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def is_expected_error(error):
    """Bad input rather than a bug: `EXPECTED_ERRORS`, safetensors' error for a truncated or corrupt weights file and
    Jinja's for a bad chat template (or a conversation the template rejects), matched by name: no import of either;
    and a `--strict` measurement refused on a busy machine (`calibration.MachineBusyError`)."""
    from .calibration import MachineBusyError

    return (isinstance(error, (*EXPECTED_ERRORS, MachineBusyError)) or type(error).__name__ == "SafetensorError"
            or type(error).__module__.startswith("jinja2"))


def exit_code_for(error):
    """The exit code of an expected error: `calibration.EXIT_BUSY` for a busy machine, else `EXIT_USAGE`."""
    from .calibration import EXIT_BUSY, MachineBusyError

    return EXIT_BUSY if isinstance(error, MachineBusyError) else EXIT_USAGE


def one_line(error):
    """The error's message on one line (transformers' multi-line messages included)."""
    text = " ".join(str(error).split())
    if type(error).__name__ == "SafetensorError":
        text = f"unreadable .safetensors weights (a truncated or corrupt file: copy or save it again): {text}"
    elif type(error).__module__.startswith("jinja2"):
        line = getattr(error, "lineno", None)
        text = f"chat template: {text or type(error).__name__}" + (f" (line {line})" if line else "")
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.strerror}: {error.filename}"  # "[Errno 2] No such file or directory: 'x'" -> no errno
    return text or type(error).__name__


def report_error(command, error, exit_code=EXIT_USAGE):
    """Prints `hf-eagle31 <command>: error: <message>` (one line) to stderr and returns `exit_code`."""
    print(f"hf-eagle31 {command}: error: {one_line(error)}", file=sys.stderr)
    return exit_code


def write_json_report(path, report, announce=True):
    """Writes a command's report as indented JSON (creating the folder) and, with `announce`, prints `wrote PATH`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    if announce:
        print(f"wrote {path}")
    return path


@contextlib.contextmanager
def package_log_messages(level=logging.INFO):
    """
    While a command runs, the package's log records of `level` and above go to stderr as plain lines (e.g. the draft
    vocabulary's coverage during `train`, conversion notes during `convert`). The handler is bound to the current
    stderr and removed afterwards, so nothing is configured beyond the command.
    """
    logger = logging.getLogger(PACKAGE_LOGGER)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# ---------------------------------------------------------------------------------------------- arguments


def add_target_argument(parser):
    parser.add_argument("--target", default=None,
                        help="target model: Hub id, folder or .gguf (default: embedded SmolLM2-135M-Instruct)")


def add_trust_remote_code_argument(parser):
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let a --drafter that is not an hf-eagle31 checkpoint run its own code (hf-eagle31 "
                             "drafters load with this package's classes and never need it)")


def add_drafter_dtype_argument(parser, default="same"):
    parser.add_argument("--drafter-dtype", default=default, choices=["same", "auto", "float32", "bfloat16"],
                        help=f"drafter dtype (default: {default}; same = the target's, auto = bf16 where bf16 "
                             "matmuls are native). The target verifies every token, so a bf16 drafter beside an "
                             "fp32 target keeps greedy output exact and halves the drafter's weight traffic")


def add_compile_argument(parser):
    parser.add_argument("--compile-drafter", action="store_true",
                        help="run the drafter's forward through torch.compile(dynamic=True) (compiles on first use, "
                             "seconds per shape family; see examples/chain_step_cost.py for what it saves)")
    parser.add_argument("--compile-target", action="store_true",
                        help="every method (plain, prompt lookup, drafter) decodes with a static target cache and the "
                             "target's forward compiled by generate (a StaticCache per call + compile_config; "
                             "minutes of compilation on a CPU, excluded by the warm-up)")


def _require_compiler(device, flag):
    import shutil

    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++")):
        raise ValueError(f"{flag} needs a C++ compiler on the PATH for torch.compile on the CPU: install g++ (or set "
                         "CXX), or drop the flag.")


def static_cache_rollback_supported() -> bool:
    """Whether this transformers can roll a static cache back after rejected draft tokens (5.24 added
    `StaticLayer.crop`, and with it a compiled target forward in assisted decoding)."""
    from transformers.cache_utils import StaticLayer

    return "crop" in vars(StaticLayer)


def compile_target_generation(target) -> None:
    """Let `target.generate` compile the target's forward whenever it decodes with a static cache (transformers does
    so itself when the cache is static and `compile_config` allows the device; on a CPU that takes
    `_compile_all_devices`, and CUDA-graph mode is CUDA-only). Pass the static cache per call:
    `cache_implementation="static"`, or a `StaticCache` (what `bench --compile-target` does)."""
    from transformers import CompileConfig

    if not static_cache_rollback_supported():
        raise ValueError("--compile-target needs transformers >= 5.24 (static-cache rollback in assisted decoding): "
                         "pip install -U 'transformers>=5.24', or drop the flag.")
    config = CompileConfig(dynamic=True, mode="reduce-overhead" if target.device.type == "cuda" else "default")
    config._compile_all_devices = True
    target.generation_config.compile_config = config


def apply_compile_argument(args, drafter, target):
    """`--compile-drafter`: `drafter.forward = torch.compile(drafter.forward, dynamic=True)`; `--compile-target`:
    `compile_target_generation(target)`. Returns `{"drafter": bool, "target": bool}` (what was compiled). Refused
    in one line where torch.compile's CPU backend has no C++ compiler to call."""
    done = {"drafter": bool(getattr(args, "compile_drafter", False)),
            "target": bool(getattr(args, "compile_target", False))}
    if done["drafter"]:
        _require_compiler(drafter.device, "--compile-drafter")
        drafter.forward = torch.compile(drafter.forward, dynamic=True)
    if done["target"]:
        _require_compiler(target.device, "--compile-target")
        compile_target_generation(target)
    return done


def add_json_argument(parser):
    parser.add_argument("--json", default=None, help="write the results as JSON here")


def add_common_arguments(parser, multiple_drafters=False):
    """The target, drafter(s), prompts, chat template and dtype options of `eval`, `bench` and `drift`."""
    add_target_argument(parser)
    if multiple_drafters:
        parser.add_argument("--drafter", action="append", required=True,
                            help="drafter checkpoint (folder or Hub id); repeat to compare drafters side by side")
    else:
        parser.add_argument("--drafter", required=True, help="drafter checkpoint (folder or Hub id)")
    add_trust_remote_code_argument(parser)
    parser.add_argument("--prompts", default=None, help="JSON-lines prompts: 'prompt', 'turns' or 'messages' per line")
    parser.add_argument("--suite", default="standard", choices=["standard", "perturbed", "long", "all", "heldout"],
                        help="prompt suite used when no --prompts file is given (default standard)")
    parser.add_argument("--sources", nargs="+", default=None,
                        help="restrict the suites to these sources (e.g. mtbench gsm8k; long: pg-essays hotpotqa)")
    parser.add_argument("--long-lengths", type=int, nargs="+", default=None,
                        help="prompt lengths in tokens for the long suite (default 2048 4096 7168)")

    parser.add_argument("--num-prompts", type=int, default=None,
                        help="first N prompts of --prompts; with a suite, N per source (per source and length for long)")
    parser.add_argument("--chat-template", default=None,
                        help="a .jinja file (or 'plain' / 'alpaca' text format) replacing the tokenizer's chat template")
    parser.add_argument("--system-prompt", default=None, help="system prompt for every prompt")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="target/drafter dtype")
    add_drafter_dtype_argument(parser)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    add_small_batch_argument(parser)


def add_small_batch_argument(parser):
    parser.add_argument("--small-batch-linears", default="auto", choices=["auto", "on", "off"],
                        help="route the target's fp32 CPU linear layers through the product that makes a K+1-token "
                             "verification cost about a 1-token forward (hf_eagle31.small_batch; auto: on for an "
                             "fp32 target on the CPU)")


def apply_small_batch_argument(args, target):
    """Enables `small_batch` on `target` as `--small-batch-linears` asks; returns whether it is on."""
    from .small_batch import enable, wanted

    if wanted(getattr(args, "small_batch_linears", "off"), target):
        return enable(target) > 0
    return False


# ---------------------------------------------------------------------------------------------- loaders


def policies_from_args(args):
    """`{name: generate options}` from `--policies a,b --confidence-threshold T --copy-tokens N` (empty: none)."""
    from .evaluation import drafting_policy

    names = [n.strip() for n in args.policies.split(",") if n.strip()] if args.policies else []
    return {name: drafting_policy(name, args.confidence_threshold, args.copy_tokens) for name in names}


def add_policy_arguments(parser):
    from .evaluation import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_COPY_TOKENS, DRAFTING_POLICIES

    parser.add_argument("--policies", default=None,
                        help=f"comma-separated drafting policies to compare beside each drafter as shipped "
                             f"({', '.join(DRAFTING_POLICIES)}; a confidence policy may set its own threshold: "
                             "confidence@0.2)")
    parser.add_argument("--confidence-threshold", type=float, default=DEFAULT_CONFIDENCE_THRESHOLD,
                        help="assistant_confidence_threshold of the confidence policies without their own @<threshold> "
                             f"(default {DEFAULT_CONFIDENCE_THRESHOLD}, the shipped drafters' value)")
    parser.add_argument("--copy-tokens", type=int, default=DEFAULT_COPY_TOKENS,
                        help="prompt_lookup_num_tokens of the copy policies: longest copied span "
                             f"(default {DEFAULT_COPY_TOKENS})")


def load_target_for_cli(args):
    """`(model, tokenizer)` for `--target` (None = the embedded SmolLM2-135M-Instruct) in `--dtype`, with
    `--small-batch-linears` applied."""
    from .targets import load_target

    dtype = getattr(torch, args.dtype)
    device = getattr(args, "device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
    target, tokenizer = load_target(args.target, dtype=dtype, device=device)
    apply_small_batch_argument(args, target)
    return target, tokenizer


def drafter_dtype(args, device="cpu"):
    """`--drafter-dtype` as a torch dtype (None = the target's; "auto" = bf16 where bf16 matmuls are native)."""
    from .evaluation import native_bf16

    value = getattr(args, "drafter_dtype", "same")
    if value == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    return None if value in (None, "same") else getattr(torch, value)


def prompts_from_args(args, tokenizer, default_suite="standard"):
    """The prompts of `--prompts FILE` (first `--num-prompts`), or of `--suite` / `--sources` / `--long-lengths`."""
    from .evaluation import read_prompt_file, suite_prompts

    if getattr(args, "prompts", None):
        return read_prompt_file(args.prompts, args.num_prompts)
    return suite_prompts(getattr(args, "suite", None) or default_suite, tokenizer, args.num_prompts,
                         getattr(args, "long_lengths", None), args.chat_template, getattr(args, "sources", None))
