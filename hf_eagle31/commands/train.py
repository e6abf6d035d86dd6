# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 train`: transformers' `HfArgumentParser` over `DrafterArguments`, `DataArguments` and
`TrainingArguments`,
then `train_drafter` (or only the offline features, or only the memory estimate)."""

import argparse
import atexit
import os
import shutil
import tempfile

import torch
from transformers import HfArgumentParser, TrainingArguments

from ..data.prepare import load_prepared, with_loss_on_every_token
from ..errors import InputError
from ..hub import save_drafter
from ..loading import load_drafter_checkpoint
from ..training import (
    DataArguments,
    DrafterArguments,
    build_drafter_config,
    estimate_step_memory,
    load_target_for_features,
    merge_lora,
    precompute_training_features,
    train_drafter,
)
from ..training.budget import check_max_minutes
from ..training.pipeline import target_text_config_for_features
from ..utils import text_config
from ..utils.io import is_inside
from .common import check_model_path, check_output_path, checked


class _TrainerOptions(TrainingArguments):
    # Only for `--help`: shows every TrainingArguments option under its own heading, after ours. Parsing builds the
    # plain `TrainingArguments` (`parse_cli_arguments`), which is what checkpoints save.
    _argument_group_name = "Trainer (every transformers.TrainingArguments option)"


def build_parser(prog: str | None = None, description: str | None = None) -> HfArgumentParser:
    """`hf-eagle31 train`'s parser: transformers' `HfArgumentParser` over `DrafterArguments`, `DataArguments` and
    `TrainingArguments` (--learning_rate, --per_device_train_batch_size, --report_to, ...)."""
    parser = HfArgumentParser(
        (DrafterArguments, DataArguments, _TrainerOptions),
        prog=prog,
        description=description,
        usage="%(prog)s --data DIR [DIR ...] [--out DIR] [drafter / data options] [TrainingArguments options]",
    )
    parser.set_defaults(output_dir=None, report_to="none")  # output_dir: --out; no logging integration unless asked
    # the dataclasses' fields are checked by their own __post_init__; these checks run before any of that loads
    for action in parser._actions:
        if action.dest in ("out", "output_dir"):
            checked(action, check_output_path)
        elif action.dest in ("target", "init_from"):
            checked(action, check_model_path)
        elif action.dest == "max_minutes":
            checked(action, check_max_minutes)  # the library's own check, before loading
    return parser


def parse_cli_arguments(args: argparse.Namespace) -> tuple[DrafterArguments, DataArguments, TrainingArguments]:
    """
    The parsed `hf-eagle31 train` namespace as `(DrafterArguments, DataArguments, TrainingArguments)`. `--out` is the
    default `--output_dir`; `--bf16` without a GPU trains with bf16 autocast on the CPU (transformers asks for
    `use_cpu` to allow it).
    """
    values = dict(vars(args))
    values["output_dir"] = values.get("output_dir") or values.get("out")
    if values.get("bf16") and not torch.cuda.is_available():
        values["use_cpu"] = True
    return HfArgumentParser((DrafterArguments, DataArguments, TrainingArguments)).parse_dict(values)


def _print_memory_estimate(drafter_args, data_args, training_args, dataset):
    target_dtype = getattr(torch, drafter_args.target_dtype)
    target = load_target_for_features(drafter_args.target, data_args.offline_features, target_dtype)
    drafter = None
    if drafter_args.init_from:
        drafter = load_drafter_checkpoint(drafter_args.init_from, trust_remote_code=drafter_args.trust_remote_code)
    text = target_text_config_for_features(target, data_args.offline_features)
    drafter_config = (
        drafter.config
        if drafter is not None
        else build_drafter_config(
            text,
            drafter_args.variant,
            min(drafter_args.draft_vocab_size, text.vocab_size),
            **drafter_args.drafter_overrides(),
        )
    )
    terms = estimate_step_memory(
        text,
        drafter_config,
        training_args.per_device_train_batch_size,
        max(len(r) for r in dataset["input_ids"]),
        drafter_args.ttt_steps,
        target_bytes=torch.finfo(target_dtype).bits // 8,
        online=data_args.offline_features is None,
        loss_chunk_size=drafter_args.loss_chunk_size,
    )
    for name, value in terms.items():
        print(f"{value / 2**30:9.3f} GiB  {name}")


def run(args: argparse.Namespace) -> int:
    """`hf-eagle31 train`: `train_drafter` on the prepared data, or only the offline features (`--features-only`),
    or only the memory estimate (`--estimate-memory`)."""
    drafter_args, data_args, training_args = parse_cli_arguments(args)
    if drafter_args.out is None and not (data_args.features_only or drafter_args.estimate_memory):
        raise InputError(
            "--out DIR is needed to train: where the drafter (or LoRA adapter) is saved "
            "(only --features-only and --estimate-memory run without it)."
        )
    data_dirs = data_args.data if isinstance(data_args.data, (list, tuple)) else [data_args.data]
    for flag, folder in (("--out", drafter_args.out), ("--output_dir", training_args.output_dir)):
        for data in data_dirs:
            if folder is not None and os.path.isdir(data) and is_inside(folder, data):
                raise InputError(
                    f"{flag} {folder} is or lies inside --data {data}: choose an output folder outside the prepared "
                    "data (checkpoints and the drafter would be written among its files)."
                )
    dataset = load_prepared(data_args.data)
    eval_dataset = None
    if data_args.eval_fraction > 0:
        # the split's index files go to a temporary folder, not into the (possibly read-only) --data folder
        scratch = tempfile.mkdtemp(prefix="hf_eagle31-split-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        split = dataset.train_test_split(
            test_size=data_args.eval_fraction,
            seed=0,
            train_indices_cache_file_name=os.path.join(scratch, "train.arrow"),
            test_indices_cache_file_name=os.path.join(scratch, "test.arrow"),
        )
        dataset, eval_dataset = split["train"], split["test"]
    target_dtype = getattr(torch, drafter_args.target_dtype)
    if data_args.features_only:
        target = load_target_for_features(drafter_args.target, data_args.offline_features, target_dtype)
        if target is not None:
            text = text_config(target)
            layer_ids = build_drafter_config(
                text, drafter_args.variant, min(drafter_args.draft_vocab_size, text.vocab_size)
            ).target_layer_ids
            rows = with_loss_on_every_token(dataset) if data_args.loss_tokens == "all" else dataset  # as train's
            precompute_training_features(target, rows, layer_ids, data_args.offline_features, eval_dataset)
        print(f"features complete in {data_args.offline_features}")
        return 0
    if drafter_args.estimate_memory:
        _print_memory_estimate(drafter_args, data_args, training_args, dataset)
        return 0
    trainer = train_drafter(dataset, drafter_args, data_args, training_args, eval_dataset=eval_dataset)
    if trainer.stopped_by_budget:
        if trainer.args.should_save:
            print(
                f"stopped by --max-minutes {drafter_args.max_minutes:g} at step {trainer.state.global_step} of "
                f"max_steps {trainer.state.max_steps}: not finished, checkpoint saved in {training_args.output_dir}; "
                "continue with the same command plus --resume_from_checkpoint latest"
            )
        return 0
    if drafter_args.lora_r > 0 and drafter_args.merge_lora and trainer.args.should_save:
        save_drafter(merge_lora(trainer.model), os.path.join(drafter_args.out, "merged"))
    if trainer.finished_before and trainer.args.should_save:
        print(
            f"the run in {training_args.output_dir} had already finished (step {trainer.state.global_step}): "
            f"nothing trained; {drafter_args.out} holds its drafter (raise --max_steps to train further)"
        )
    elif trainer.args.should_save:
        print(f"saved to {drafter_args.out}")
    return 0
