# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 suites`: build the evaluation suites for a target's tokenizer and report their sizes."""

import argparse

from transformers import AutoTokenizer

from ..data.suites import long_suite, perturbed_suite, render, standard_suite
from ..targets import DEFAULT_TARGET, TARGETS, _cached_copy, load_target
from .common import WITHIN_CONTEXT, add, add_count_argument, add_target_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser, help="target whose tokenizer renders the prompts (default: SmolLM2)")
    add_count_argument(parser, "--num-per-source", default=10)
    add_count_argument(parser, "--num-per-length", default=2)
    add_count_argument(parser, "--lengths", nargs="+", default=[2048, 4096, 7168], at_most=WITHIN_CONTEXT)
    add(parser, "--show", action="store_true", help="print the first prompt of each source, rendered")


def run(args) -> int:
    name = args.target or DEFAULT_TARGET
    if name in TARGETS and _cached_copy(name) is not None:
        tokenizer = AutoTokenizer.from_pretrained(_cached_copy(name))
    else:
        tokenizer = load_target(args.target)[1]
    for label, suite in [
        ("standard", standard_suite(args.num_per_source)),
        ("perturbed", perturbed_suite(args.num_per_source)),
        ("long", long_suite(tokenizer, tuple(args.lengths), args.num_per_length)),
    ]:
        groups = {}
        for prompt in suite:
            key = (prompt.source, prompt.meta.get("perturbation") or prompt.meta.get("target_tokens") or "")
            groups.setdefault(key, []).append(len(render(tokenizer, prompt)))
        print(f"{label}: {len(suite)} prompts")
        for (source, variant), sizes in groups.items():
            print(
                f"  {source:10s} {str(variant):22s} n={len(sizes):3d}  tokens min {min(sizes):5d}  "
                f"mean {sum(sizes) / len(sizes):7.1f}  max {max(sizes):5d}"
            )
        if args.show:
            shown = set()
            for prompt in suite:
                if prompt.source not in shown:
                    shown.add(prompt.source)
                    text = tokenizer.decode(render(tokenizer, prompt))
                    print(f"--- {prompt.id} ---\n{text[:600]}{' [...]' if len(text) > 600 else ''}")
    return 0
