# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 train`: transformers' `HfArgumentParser` over `DrafterArguments`, `DataArguments` and
`TrainingArguments`,
then `train_drafter` (or only the offline features, or only the memory estimate)."""

import argparse
import atexit
import contextlib
import dataclasses
import functools
import importlib.util
import json
import math
import os
import shutil
import tempfile
import warnings

import torch
from transformers import HfArgumentParser, Trainer, TrainingArguments, get_scheduler
from transformers.utils import logging as transformers_logging

from ..data.prepare import load_prepared, with_loss_on_every_token
from ..errors import InputError
from ..hub import save_drafter
from ..loading import check_drafter_config, load_drafter_checkpoint
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
from ..training.checkpoints import resolve_resume_checkpoint
from ..training.pipeline import target_text_config_for_features
from ..utils import text_config
from ..utils.io import is_inside
from .common import (
    SEED,
    Bound,
    Integer,
    Is,
    Number,
    OneLineErrors,
    When,
    add_check,
    add_fact,
    check_dataset_path,
    check_drafter_path,
    check_model_path,
    check_output_path,
    check_text,
    declare,
    needs_own_code,
    read_json_file,
)


class _TrainerOptions(TrainingArguments):
    # Only for `--help`: shows every TrainingArguments option under its own heading, after ours. Parsing builds the
    # plain `TrainingArguments` (`parse_cli_arguments`), which is what checkpoints save.
    _argument_group_name = "Trainer (every transformers.TrainingArguments option)"


class TrainParser(OneLineErrors, HfArgumentParser):
    """`HfArgumentParser` whose errors are one line, as every verb's."""


# ---------------------------------------------------------------------------------------------- contracts
# Where each option applies and what it accepts. Our dataclasses' options and transformers' TrainingArguments
# options alike: a TrainingArguments option a new transformers release adds has no entry and fails the contract
# test's coverage until it gets one.

TRAINING = When("--features-only / --estimate-memory train nothing", features_only=False, estimate_memory=False)
NOT_FEATURES = When("--features-only computes the target's features only", features_only=False)
FRESH = When("--init-from keeps its checkpoint's shape and head", init_from=None)
EVALUATING = When(
    "held-out rows are evaluated only with --eval-fraction", eval_fraction=Is(lambda v: v > 0, "> 0", 0.25)
)
DISTRIBUTED = When("it configures a distributed run (torchrun / accelerate launch: WORLD_SIZE > 1)", distributed=True)
BY_STEPS = {"logging": "logging_strategy", "eval": "eval_strategy", "save": "save_strategy"}


def _never(why):
    return When(why, never=True)


def _by_steps(kind):
    return When(f"--{BY_STEPS[kind]} steps reads it", **{BY_STEPS[kind]: "steps"})


def _reports_to(name=None):
    """--report_to includes `name` (any integration when None)."""

    def test(value):
        names = {n.strip() for n in str(value or "none").replace(",", " ").split()}
        return bool(names - {"none"}) if name is None else bool(names & {name, "all"})

    return Is(test, f"including {name}" if name else "not none", name or "tensorboard")


def _json_object(text):
    """argparse type: a JSON object (the TrainingArguments options that take a dict)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"invalid JSON object {text!r}: pass e.g. '{{\"key\": 1}}'")
    return text  # TrainingArguments parses the string itself


def _json_file_or_object(value, flag) -> dict:
    """A config given as a .json file or as a JSON object (--deepspeed, --fsdp_config, --accelerator_config)."""
    path = os.path.expanduser(str(value))
    if os.path.isfile(path):
        parsed = read_json_file(path)
        if parsed is None:
            raise InputError(f"{flag} {value}: not a JSON object file.")
        return parsed
    try:
        parsed = json.loads(str(value))
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InputError(f"{flag} {value}: pass an existing .json file or a JSON object.")
    return parsed


def _check_accelerator_config(value, flag):
    """--accelerator_config: a .json file or JSON object of `AcceleratorConfig` fields."""
    from transformers.trainer_pt_utils import AcceleratorConfig

    known = {field.name for field in dataclasses.fields(AcceleratorConfig)}
    unknown = sorted(set(_json_file_or_object(value, flag)) - known)
    if unknown:
        raise InputError(f"{flag} {value}: unknown keys {unknown}; AcceleratorConfig has {', '.join(sorted(known))}.")


def _needs_package(package, flag_text):
    def check(value, flag):
        if value and importlib.util.find_spec(package) is None:
            raise InputError(f"{flag} needs the `{package}` package: pip install {package} (or drop {flag_text}).")

    check.needs_package = package
    return check


def _check_deepspeed(value, flag):
    _needs_package("deepspeed", flag)(value, flag)
    _json_file_or_object(value, flag)


def _check_fsdp(value, flag):
    from transformers.trainer_utils import FSDPOption

    known = [o.value for o in FSDPOption]
    unknown = [o for o in str(value).split() if o not in known]
    if unknown or not str(value).strip():
        raise InputError(f"{flag} {value!r}: pass FSDP options from {', '.join(known)}.")


def _check_report_to(value, flag):
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    names = [n for n in str(value).replace(",", " ").split()]
    if not names:
        raise InputError(f"{flag} is empty: pass none, all or integrations ({', '.join(INTEGRATION_TO_CALLBACK)}).")
    for name in names:
        if name in ("none", "all"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise InputError(
                f"{flag} {name}: not an integration; pass none, all or {', '.join(INTEGRATION_TO_CALLBACK)}."
            )
        if name not in get_available_reporting_integrations():
            raise InputError(f"{flag} {name}: its package is not installed (pip install {name}), or pass none.")


def _check_max_steps(value, flag):
    if value == 0:
        raise InputError(f"{flag} 0: pass a number of steps >= 1 (or -1: --num_train_epochs sets the length).")


def _check_torch_compile_backend(value, flag):
    backends = torch._dynamo.list_backends(exclude_tags=())
    if value not in backends:
        raise InputError(f"{flag} {value!r}: not a torch.compile backend; pass one of {', '.join(backends)}.")


def _check_optim(value, flag):
    """--optim: an optimizer transformers can build here (some need a package: bitsandbytes, galore_torch, ...)."""
    try:
        with quietly():
            probe = TrainingArguments(output_dir=tempfile.gettempdir(), optim=value, use_cpu=True, report_to="none")
            Trainer.get_optimizer_cls_and_kwargs(probe)
    except (ImportError, ValueError) as error:
        text = " ".join(str(error).split())
        if "optim_target_modules" not in text:  # (GaLore / APOLLO: --optim_target_modules is checked with the rest)
            raise InputError(f"{flag} {value}: {text}") from None


def _check_optim_args(value, flag):
    """--optim_args: key=value pairs, comma-separated (what transformers splits them into)."""
    pairs = [p for p in str(value).replace(" ", "").split(",") if p]
    if not pairs or not all(p.count("=") == 1 and p.split("=")[0] and p.split("=")[1] for p in pairs):
        raise InputError(f"{flag} {value!r}: pass key=value pairs separated by commas, e.g. betas=0.9,0.95.")


def _check_resume(value, flag):
    if not str(value).strip():
        raise InputError(f"{flag} is empty: pass a checkpoint-N folder or 'latest'.")


def _not_settable(text):
    raise argparse.ArgumentTypeError("not settable on the command line: pass it in Python (TrainingArguments(...))")


# dest -> the contract of that option: `type` replaces argparse's conversion (a range), the rest goes to `declare`.
# Every TrainingArguments option applies only when training (`TRAINING`) unless its entry says `applies`.
OPTIONS = {
    # --- ours: the drafter
    "out": dict(check=check_output_path, applies=TRAINING),
    "target": dict(check=check_model_path),
    "target_name_or_path": dict(check=check_text, applies=TRAINING),
    "target_dtype": {},
    "variant": dict(applies=FRESH),
    "ttt_steps": dict(
        type=Integer(1),
        applies=NOT_FEATURES,
        # step j predicts token t + 2 + j: steps past the longest row minus 2 have nothing to predict
        at_most=Bound(lambda ctx: max(ctx.longest_row - 2, 1), "the longest training row - 2 (tokens to predict)"),
    ),
    "draft_vocab_size": dict(type=Integer(1), applies=NOT_FEATURES & FRESH),  # capped at the target's vocabulary
    "head_init": dict(applies=TRAINING & FRESH),
    "num_layers": dict(type=Integer(1), applies=NOT_FEATURES & FRESH),
    "intermediate_size": dict(type=Integer(1), applies=NOT_FEATURES & FRESH),
    "loss_chunk_size": dict(type=Integer(0), applies=NOT_FEATURES),
    "loss_objective": dict(applies=TRAINING),
    "init_from": dict(check=check_drafter_path, applies=NOT_FEATURES),
    "trust_remote_code": dict(
        applies=When(
            "only an --init-from checkpoint that is not an hf-eagle31 drafter runs code of its own", own_code=True
        )
    ),
    "overwrite": dict(applies=TRAINING),
    "lora_r": dict(
        type=Integer(0),
        applies=TRAINING & When("LoRA adapts a trained drafter", init_from=True),
        # a rank above the layers' width adapts nothing more (the target's hidden size bounds the drafter's)
        at_most=Bound(lambda ctx: ctx.hidden_size, "the target's hidden size (a LoRA rank above it adds nothing)"),
    ),
    "lora_alpha": dict(
        type=Integer(1), applies=TRAINING & When("it scales a LoRA adapter", lora_r=Is(lambda v: v > 0, "> 0", 2))
    ),
    "lora_dropout": dict(
        type=Number(0, 1, high_open=True),
        applies=TRAINING & When("it is a LoRA adapter's dropout", lora_r=Is(lambda v: v > 0, "> 0", 2)),
    ),
    "lora_target_modules": dict(
        check=check_text,
        applies=TRAINING & When("it picks what a LoRA adapter adapts", lora_r=Is(lambda v: v > 0, "> 0", 2)),
    ),
    "merge_lora": dict(applies=TRAINING & When("it merges a LoRA adapter", lora_r=Is(lambda v: v > 0, "> 0", 2))),
    "max_minutes": dict(type=Number(0, low_open=True, note="minutes"), applies=TRAINING),
    "estimate_memory": dict(excludes=When("it computes features, no training step", features_only=True)),
    # --- ours: the data
    "data": dict(check=check_dataset_path),
    "eval_fraction": dict(
        type=Number(0, 1, high_open=True, note="0 = no held-out rows"),
        # datasets rounds the held-out rows up: at most rows - 1 of them, so one row is left to train on
        at_most=Bound(
            lambda ctx: (ctx.rows - 1) / ctx.rows, "(rows - 1) / rows: at least one row must be left to train on"
        ),
    ),
    "offline_features": dict(
        check=check_output_path, applies=When("the estimate reads no features", estimate_memory=False)
    ),
    "features_only": dict(applies=When("features are written to --offline-features", offline_features=True)),
    "loss_tokens": dict(applies=When("the estimate does not depend on it", estimate_memory=False)),
    # --- TrainingArguments: the run
    "output_dir": dict(check=check_output_path),
    "per_device_train_batch_size": dict(
        type=Integer(1),
        applies=NOT_FEATURES,
        at_most=Bound(
            lambda ctx: ctx.train_rows, "the training rows (a larger batch is the whole data, padded)", defaults=False
        ),
    ),
    "num_train_epochs": dict(
        type=Number(0, low_open=True),
        applies=When("--max_steps sets the run's length", max_steps=Is(lambda v: v < 1, "-1", -1)),
    ),
    "max_steps": dict(type=Integer(-1), check=_check_max_steps),
    "learning_rate": dict(type=Number(0, low_open=True)),
    "lr_scheduler_type": {},
    "lr_scheduler_kwargs": dict(type=_json_object),
    "warmup_steps": dict(type=Number(0, note="< 1: a share of the steps")),
    "optim": dict(check=_check_optim),
    "optim_args": dict(check=_check_optim_args),
    "weight_decay": dict(type=Number(0)),
    "adam_beta1": dict(type=Number(0, 1, high_open=True)),
    "adam_beta2": dict(type=Number(0, 1, high_open=True)),
    "adam_epsilon": dict(type=Number(0, low_open=True)),
    "optim_target_modules": dict(
        applies=When(
            "only GaLore / APOLLO optimizers read it",
            optim=Is(lambda o: "galore" in o or "apollo" in o, "galore*/apollo*", "galore_adamw"),
        )
    ),
    "gradient_accumulation_steps": dict(type=Integer(1)),
    "average_tokens_across_devices": {},
    "max_grad_norm": dict(type=Number(0, note="0 = no clipping")),
    "label_smoothing_factor": dict(
        type=Number(0, 1, high_open=True),
        applies=_never("the loss is a soft cross-entropy against the target's distribution (no labels to smooth)"),
    ),
    "bf16": dict(excludes=When("pick one mixed precision", fp16=True)),
    "fp16": dict(
        excludes=When("pick one mixed precision", bf16=True),
        applies=When("fp16 mixed precision needs a CUDA device (--bf16 runs on the CPU)", cuda=True),
    ),
    "bf16_full_eval": dict(applies=EVALUATING, excludes=When("pick one evaluation precision", fp16_full_eval=True)),
    "fp16_full_eval": dict(
        applies=EVALUATING & When("fp16 needs a CUDA device", cuda=True),
        excludes=When("pick one evaluation precision", bf16_full_eval=True),
    ),
    "tf32": dict(applies=When("TF32 is an Ampere (or newer) GPU mode", ampere=True)),
    "activation_checkpointing": dict(
        applies=_never("the drafter does not support gradient checkpointing (--loss-chunk-size saves memory)")
    ),
    "activation_checkpointing_kwargs": dict(
        type=_json_object, applies=_never("the drafter does not support gradient checkpointing")
    ),
    "gradient_checkpointing": dict(
        applies=_never("the drafter does not support gradient checkpointing (--loss-chunk-size saves memory)")
    ),
    "gradient_checkpointing_kwargs": dict(
        type=_json_object, applies=_never("the drafter does not support gradient checkpointing")
    ),
    "torch_compile": {},
    "torch_compile_backend": dict(check=_check_torch_compile_backend),
    "torch_compile_mode": dict(choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]),
    "use_liger_kernel": dict(check=_needs_package("liger_kernel", "--use_liger_kernel")),
    "liger_kernel_config": dict(
        type=_json_object, applies=When("it configures --use_liger_kernel", use_liger_kernel=True)
    ),
    "use_cache": {},
    "neftune_noise_alpha": dict(type=Number(0, low_open=True)),
    "torch_empty_cache_steps": dict(type=Integer(1)),
    "auto_find_batch_size": {},
    # --- TrainingArguments: logging
    "logging_strategy": {},
    "logging_steps": dict(
        type=Number(0, low_open=True, note="< 1: a share of the steps"), applies=_by_steps("logging")
    ),
    "logging_first_step": dict(applies=When("nothing is logged", logging_strategy=("steps", "epoch"))),
    "log_on_each_node": {},
    "logging_nan_inf_filter": {},
    "include_num_input_tokens_seen": {},
    "log_level": {},
    "log_level_replica": {},
    "disable_tqdm": {},
    "report_to": dict(check=_check_report_to),
    "run_name": dict(applies=When("only a logging integration reads it", report_to=_reports_to())),
    "project": dict(applies=When("only a logging integration reads it", report_to=_reports_to())),
    "trackio_space_id": dict(applies=When("only trackio reads it", report_to=_reports_to("trackio"))),
    "trackio_bucket_id": dict(applies=When("only trackio reads it", report_to=_reports_to("trackio"))),
    "trackio_static_space_id": dict(applies=When("only trackio reads it", report_to=_reports_to("trackio"))),
    # --- TrainingArguments: evaluation (held-out rows: --eval-fraction)
    "eval_strategy": dict(applies=EVALUATING),
    "eval_steps": dict(
        type=Number(0, low_open=True, note="< 1: a share of the steps"), applies=EVALUATING & _by_steps("eval")
    ),
    "eval_delay": dict(type=Number(0), applies=EVALUATING),
    "per_device_eval_batch_size": dict(type=Integer(1), applies=EVALUATING),
    "prediction_loss_only": dict(applies=EVALUATING),
    "eval_on_start": dict(applies=EVALUATING),
    "eval_do_concat_batches": dict(applies=EVALUATING),
    "eval_use_gather_object": dict(applies=EVALUATING),
    "eval_accumulation_steps": dict(type=Integer(1), applies=EVALUATING),
    "include_for_metrics": dict(applies=_never("this trainer has no compute_metrics (its metrics are built in)")),
    "batch_eval_metrics": dict(applies=_never("this trainer has no compute_metrics (its metrics are built in)")),
    # --- TrainingArguments: checkpoints
    "save_only_model": dict(applies=When("nothing is saved", save_strategy=("steps", "epoch", "best"))),
    "save_strategy": {},
    "save_steps": dict(type=Number(0, low_open=True, note="< 1: a share of the steps"), applies=_by_steps("save")),
    "save_on_each_node": {},
    "save_total_limit": dict(
        type=Integer(1), applies=When("nothing is saved", save_strategy=("steps", "epoch", "best"))
    ),
    "enable_jit_checkpoint": {},
    "push_to_hub": {},
    "hub_token": dict(applies=When("only --push_to_hub uploads", push_to_hub=True)),
    "hub_private_repo": dict(applies=When("only --push_to_hub uploads", push_to_hub=True)),
    "hub_model_id": dict(applies=When("only --push_to_hub uploads", push_to_hub=True)),
    "hub_strategy": dict(applies=When("only --push_to_hub uploads", push_to_hub=True)),
    "hub_always_push": dict(applies=When("only --push_to_hub uploads", push_to_hub=True)),
    "hub_revision": dict(applies=When("only --push_to_hub uploads", push_to_hub=True)),
    "load_best_model_at_end": dict(
        applies=EVALUATING & When("the best model is found by evaluations", eval_strategy=("steps", "epoch"))
    ),
    "metric_for_best_model": dict(
        applies=EVALUATING & When("only --load_best_model_at_end reads it", load_best_model_at_end=True)
    ),
    "greater_is_better": dict(
        applies=EVALUATING & When("only --metric_for_best_model reads it", metric_for_best_model=True)
    ),
    "ignore_data_skip": dict(applies=When("only a resumed run skips data", resume_from_checkpoint=True)),
    "restore_callback_states_from_checkpoint": dict(
        applies=When("only a resumed run restores", resume_from_checkpoint=True)
    ),
    "resume_from_checkpoint": dict(check=_check_resume),
    # --- TrainingArguments: determinism, devices, data loading, distributed
    "full_determinism": {},
    "seed": dict(type=SEED),
    "data_seed": dict(type=SEED),
    "use_cpu": {},
    "accelerator_config": dict(check=_check_accelerator_config),
    "parallelism_config": dict(type=_not_settable),
    "dataloader_drop_last": {},
    "dataloader_num_workers": dict(type=Integer(0)),
    "dataloader_pin_memory": {},
    "dataloader_persistent_workers": dict(
        applies=When("only worker processes persist", dataloader_num_workers=Is(lambda v: v > 0, "> 0", 1))
    ),
    "dataloader_prefetch_factor": dict(
        type=Integer(1),
        applies=When("only worker processes prefetch", dataloader_num_workers=Is(lambda v: v > 0, "> 0", 1)),
    ),
    "dataloader_multiprocessing_context": dict(
        applies=When("only worker processes have a context", dataloader_num_workers=Is(lambda v: v > 0, "> 0", 1))
    ),
    "dataloader_in_order": {},
    "remove_unused_columns": {},
    "label_names": dict(applies=_never("the drafter's labels are the target's own predictions")),
    "train_sampling_strategy": {},
    "length_column_name": dict(
        applies=When("only group_by_length sampling reads lengths", train_sampling_strategy="group_by_length")
    ),
    "ddp_find_unused_parameters": dict(applies=DISTRIBUTED),
    "ddp_bucket_cap_mb": dict(type=Integer(1), applies=DISTRIBUTED),
    "ddp_broadcast_buffers": dict(applies=DISTRIBUTED),
    "ddp_static_graph": dict(applies=DISTRIBUTED),
    "ddp_backend": dict(applies=DISTRIBUTED),
    "ddp_timeout": dict(type=Integer(1), applies=DISTRIBUTED),
    "fsdp": dict(check=_check_fsdp, applies=DISTRIBUTED),
    "fsdp_config": dict(check=_json_file_or_object, applies=DISTRIBUTED & When("it configures --fsdp", fsdp=True)),
    "deepspeed": dict(check=_check_deepspeed),
    "debug": {},
    "skip_memory_metrics": {},
    "do_train": dict(applies=_never("the Trainer does not read it: `hf-eagle31 train` always trains")),
    "do_eval": dict(applies=_never("the Trainer does not read it: --eval-fraction evaluates held-out rows")),
    "do_predict": dict(applies=_never("the Trainer does not read it: `hf-eagle31 train` predicts nothing")),
    "local_rank": dict(type=Integer(-1)),
}
# DataArguments / DrafterArguments fields: everything else in OPTIONS is a TrainingArguments option
OURS = {
    "out", "target", "target_name_or_path", "target_dtype", "variant", "ttt_steps", "draft_vocab_size", "head_init",
    "num_layers", "intermediate_size", "loss_chunk_size", "loss_objective", "init_from", "trust_remote_code",
    "overwrite", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "merge_lora", "max_minutes",
    "estimate_memory", "data", "eval_fraction", "offline_features", "features_only", "loss_tokens",
}  # fmt: skip


def _dataset(ctx):
    return load_prepared(ctx.data)


def _train_rows(ctx):
    """Rows left to train on after --eval-fraction (datasets rounds the held-out share up)."""
    return ctx.rows - (math.ceil(ctx.eval_fraction * ctx.rows) if ctx.eval_fraction > 0 else 0)


def _ampere(ctx) -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def build_parser(prog: str | None = None, description: str | None = None) -> HfArgumentParser:
    """`hf-eagle31 train`'s parser: transformers' `HfArgumentParser` over `DrafterArguments`, `DataArguments` and
    `TrainingArguments` (--learning_rate, --per_device_train_batch_size, --report_to, ...), each option with its
    contract (`OPTIONS`)."""
    parser = TrainParser(
        (DrafterArguments, DataArguments, _TrainerOptions),
        prog=prog,
        description=description,
        usage="%(prog)s --data DIR [DIR ...] [--out DIR] [drafter / data options] [TrainingArguments options]",
    )
    parser.set_defaults(output_dir=None, report_to="none")  # output_dir: --out; no logging integration unless asked
    for action in parser._actions:
        if action.dest not in OPTIONS:
            continue  # (--help; a TrainingArguments option newer than this table: the contract test reports it)
        contract = dict(OPTIONS[action.dest])
        if "type" in contract:
            action.type = contract.pop("type")
        if "choices" in contract:
            action.choices = contract.pop("choices")
        if action.dest not in OURS:
            contract["applies"] = TRAINING & contract["applies"] if "applies" in contract else TRAINING
        flag = None if action.dest in OURS else action.option_strings[0]  # transformers' docs spell them with _
        long = [s for s in action.option_strings if "-" in s[2:]] if action.dest in OURS else []
        declare(action, flag=flag or (long[0] if long else None), **contract)
    for name, compute in {
        "dataset": _dataset,
        "rows": lambda ctx: len(ctx.dataset),
        "longest_row": lambda ctx: max(len(ids) for ids in ctx.dataset["input_ids"]),
        "train_rows": _train_rows,
        "cuda": lambda ctx: torch.cuda.is_available(),
        "ampere": _ampere,
        "never": lambda ctx: False,
        "own_code": lambda ctx: needs_own_code(ctx.init_from),
        "distributed": lambda ctx: int(os.environ.get("WORLD_SIZE", "1")) > 1,
    }.items():
        add_fact(parser, name, compute)
    add_check(parser, check_outputs)
    add_check(parser, check_init_from)
    add_check(parser, check_resume)
    add_check(parser, check_training_arguments)
    return parser


def check_outputs(ctx):
    """Training needs --out; no output folder lies inside the data."""
    training = not (ctx.features_only or ctx.estimate_memory)
    if ctx.out is None and training:
        raise InputError(
            "--out DIR is needed to train: where the drafter (or LoRA adapter) is saved "
            "(only --features-only and --estimate-memory run without it)."
        )
    for flag, folder in (("--out", ctx.out), ("--output_dir", ctx.output_dir)):
        for data in ctx.data:
            if folder is not None and os.path.isdir(data) and is_inside(folder, data):
                raise InputError(
                    f"{flag} {folder} is or lies inside --data {data}: choose an output folder outside the prepared "
                    "data (checkpoints and the drafter would be written among its files)."
                )


def check_init_from(ctx):
    """--init-from's config.json against what this release loads (with --trust-remote-code), before loading."""
    config = read_json_file(os.path.join(os.path.expanduser(ctx.init_from), "config.json")) if ctx.init_from else None
    if config is not None:
        check_drafter_config(config, ctx.init_from, ctx.trust_remote_code)


def check_resume(ctx):
    """--resume_from_checkpoint: a complete checkpoint with its weights (`resolve_resume_checkpoint`), before the
    target is loaded."""
    if ctx.resume_from_checkpoint is None or ctx.features_only or ctx.estimate_memory:
        return
    try:
        resolve_resume_checkpoint(ctx.resume_from_checkpoint, ctx.output_dir or ctx.out)
    except InputError as error:
        flag = "--resume_from_checkpoint"
        raise InputError(str(error) if flag in str(error) else f"{flag}: {error}") from None


def check_training_arguments(ctx):
    """The options transformers checks itself (TrainingArguments, the optimizer, the LR schedule), checked here
    before anything loads: its ValueError for a bad combination would otherwise come minutes later as a traceback."""
    if ctx.features_only or ctx.estimate_memory:
        return
    try:
        with quietly():  # a dry run: its warnings come again when the run builds them
            _check_trainer_setup(ctx)
    except InputError:
        raise
    except (ValueError, TypeError, ImportError, KeyError) as error:
        raise InputError(f"TrainingArguments: {' '.join(str(error).split())}") from None


@contextlib.contextmanager
def quietly():
    """transformers' log warnings and Python warnings muted (the pre-flight builds what the run builds again)."""
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers_logging.set_verbosity(verbosity)


def _check_trainer_setup(ctx):
    _, _, training_args = parse_cli_arguments(ctx.args)
    Trainer.get_optimizer_cls_and_kwargs(training_args)
    steps = training_args.max_steps if training_args.max_steps > 0 else 100
    probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=training_args.learning_rate)
    get_scheduler(
        training_args.lr_scheduler_type,
        probe,
        num_warmup_steps=min(int(training_args.warmup_steps * (steps if training_args.warmup_steps < 1 else 1)), steps),
        num_training_steps=steps,
        scheduler_specific_kwargs=training_args.lr_scheduler_kwargs,
    )


def parse_cli_arguments(args: argparse.Namespace) -> tuple[DrafterArguments, DataArguments, TrainingArguments]:
    """
    The parsed `hf-eagle31 train` namespace as `(DrafterArguments, DataArguments, TrainingArguments)`. `--out` is the
    default `--output_dir`; `--bf16` (`--bf16_full_eval`) without a GPU trains (evaluates) with bf16 autocast on the
    CPU (transformers asks for `use_cpu` to allow it).
    """
    values = dict(vars(args))
    values["output_dir"] = values.get("output_dir") or values.get("out")
    if (values.get("bf16") or values.get("bf16_full_eval")) and not torch.cuda.is_available():
        values["use_cpu"] = True
    return _dataclass_parser().parse_dict(values)


@functools.cache
def _dataclass_parser() -> HfArgumentParser:
    return HfArgumentParser((DrafterArguments, DataArguments, TrainingArguments))


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
