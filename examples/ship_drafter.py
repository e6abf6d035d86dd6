"""
Writes a trained drafter into the shipped layout of `hf_eagle31/drafters/`: bf16 weights without embeddings (they
are the target's), this package's remote-code files, generation defaults in generation_config.json and a model card
rendered from eval JSONs (`hf-eagle31 eval --json`) plus a training note.

    python examples/ship_drafter.py runs/r1/checkpoint-400 hf_eagle31/drafters/smollm2-135m-instruct-eagle3.1 \
        --variant eagle3.1 --training-file runs/r1/TRAINING.md --num-assistant-tokens 3 \
        --confidence-threshold 0.5 --copy-tokens 8

SRC may be DST (re-render the card / change the defaults); the drafter is written to a temporary folder first.
"""

import argparse
import json
import os
import shutil
import tempfile

import torch

from hf_eagle31.hub import save_drafter
from hf_eagle31.modeling import Eagle3Drafter


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--variant", required=True, help="the drafter's name in the eval tables (eagle3 / eagle3.1)")
    parser.add_argument("--eval", nargs="*", default=[], help="eval JSONs whose rows fill the card's Results table")
    parser.add_argument(
        "--label",
        nargs="*",
        default=[],
        metavar="PATH=NAME",
        help="show eval rows of drafter PATH as NAME (default: the directory name without -ttt*)",
    )
    parser.add_argument("--training-file", required=True, help="markdown for the card's Training section")
    parser.add_argument("--num-assistant-tokens", type=int, default=3)
    parser.add_argument("--confidence-threshold", type=float, default=None)
    parser.add_argument("--copy-tokens", type=int, default=None)
    args = parser.parse_args()

    labels = dict(item.split("=", 1) for item in args.label)
    results = [row for path in args.eval for row in json.load(open(path))["results"]]
    for row in results:  # rows are labelled with run directories: name them by variant
        path = row["drafter"]
        row["drafter"] = labels.get(path, os.path.basename(path.rstrip("/")).rsplit("-ttt", 1)[0])
    drafter = Eagle3Drafter.from_pretrained(args.src, dtype=torch.bfloat16)
    config = drafter.generation_config
    config.num_assistant_tokens = args.num_assistant_tokens
    config.num_assistant_tokens_schedule = "constant"
    config.assistant_confidence_threshold = args.confidence_threshold
    config.prompt_lookup_num_tokens = args.copy_tokens
    with open(args.training_file, encoding="utf-8") as f:
        training = f.read().strip()
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "drafter")
        save_drafter(
            drafter,
            out,
            include_embeddings=False,
            model_card={
                "eval_results": results or None,
                "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                "drafter_name": args.variant,
                "training": training,
            },
        )
        shutil.rmtree(args.dst, ignore_errors=True)
        shutil.copytree(out, args.dst)
    print(f"shipped {args.src} -> {args.dst}")


if __name__ == "__main__":
    main()
