# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
`train_drafter`: the `hf-eagle31 train` pipeline as a function, configured by the same three dataclasses the command
parses (`DrafterArguments`, `DataArguments`, transformers' `TrainingArguments`). In order: lock the outputs, refuse
what would destroy earlier work or cannot train, load (or skip) the target, load or build the drafter (a fresh one
gets its draft vocabulary from the data and its head from the target), compute missing offline features, train with
`EagleTrainer`, save the drafter whole (`checkpoints.save_final`) and evaluate the held-out rows once more.
"""

import contextlib
import functools
import inspect
import json
import os
import warnings
from typing import TYPE_CHECKING

import torch
from transformers import PretrainedConfig, PreTrainedModel, TrainerCallback, TrainingArguments

from .. import targets
from ..data.prepare import with_loss_on_every_token
from ..errors import InputError
from ..features import FeatureDataset, output_head, precompute_features
from ..loading import load_drafter_checkpoint
from ..utils import text_config
from ..utils.io import output_lock
from .arguments import DataArguments, DrafterArguments
from .budget import TrainingTimeBudget
from .checkpoints import check_training_outputs, has_final_weights, save_final
from .draft_vocab import draft_vocab_from_dataset
from .drafter import build_drafter
from .lora import apply_lora
from .loss import DEFAULT_TTT_STEPS
from .trainer import EagleTrainer


if TYPE_CHECKING:  # annotations only
    import datasets


# ---------------------------------------------------------------------------------------------- before training


def check_has_loss_tokens(dataset: "datasets.Dataset") -> None:
    """Refuses data where no row has an assistant (loss) token the drafter could predict (position >= 2)."""
    if "loss_mask" not in getattr(dataset, "column_names", ()):
        return
    for mask in dataset["loss_mask"]:
        if any(mask[2:]):
            return
    raise InputError(
        f"none of the {len(dataset)} training rows has an assistant (loss) token past position 2: nothing to learn; "
        "prepare the data from conversations with assistant replies (`hf-eagle31 prepare-data`, see its report)."
    )


def check_ttt_steps(ttt_steps: int, dataset: "datasets.Dataset") -> None:
    """Refuses a TTT unroll longer than the sequences: step j predicts token t + 2 + j, so steps past the longest row
    minus 2 see no target (and each still costs the memory of a whole forward)."""
    if "input_ids" not in getattr(dataset, "column_names", ()):
        return
    longest = max((len(ids) for ids in dataset["input_ids"]), default=0)
    if ttt_steps > max(longest - 2, 1):
        raise InputError(
            f"--ttt-steps {ttt_steps} is longer than the sequences allow (the longest row has {longest} tokens: at "
            f"most {max(longest - 2, 1)} steps have a token to predict); pass a smaller --ttt-steps (EAGLE-3: 7)."
        )


def _features_complete(feature_dir: str | None) -> bool:
    path = os.path.join(feature_dir, "manifest.json") if feature_dir else None
    if path is None or not os.path.exists(path):
        return False
    with open(path) as f:
        return bool(json.load(f).get("complete"))


def target_text_config_for_features(target: PreTrainedModel | None, feature_dir: str | None) -> PretrainedConfig:
    """The target's text config: the model's, or the one saved with the features when no target is loaded."""
    config = target.config if target is not None else FeatureDataset(feature_dir, verify="size").target_config()
    return text_config(config)


def load_target_for_features(
    name_or_path: str | os.PathLike | None, feature_dir: str | None = None, dtype: torch.dtype = torch.float32
) -> PreTrainedModel | None:
    """
    The frozen target `name_or_path` (`targets.load_target` in `dtype`), or None when training needs none: the
    features in `feature_dir` are complete. Features still to compute need a single process (several would write
    the same shards), so under `accelerate launch` / torchrun they are refused with the command that computes them.
    """
    if _features_complete(feature_dir):
        return None
    if feature_dir is not None and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise InputError(
            f"features in {feature_dir} are not complete: compute them in a single process first "
            "(`hf-eagle31 train --data ... --offline-features DIR --features-only`), then launch the training."
        )
    return targets.load_target(name_or_path, dtype=dtype)[0]


def precompute_training_features(
    target: PreTrainedModel,
    dataset: "datasets.Dataset",
    target_layer_ids: list[int],
    feature_dir: str,
    eval_dataset: "datasets.Dataset | None" = None,
) -> None:
    """The offline features of the training rows in `feature_dir` and of `eval_dataset` (if any) in
    `feature_dir-eval` (`features.precompute_features`: resumable, one process)."""
    precompute_features(target, dataset, target_layer_ids, feature_dir)
    if eval_dataset is not None:
        precompute_features(target, eval_dataset, target_layer_ids, feature_dir + "-eval")


@contextlib.contextmanager
def _output_locks(out: str, checkpoint_dir: str | None):
    """One writer per output: the drafter folder `out` and the checkpoint folder are locked for the whole run, by the
    main process of a distributed run (its other processes are the same run)."""
    folders = {os.path.abspath(out), os.path.abspath(checkpoint_dir or out)}
    with contextlib.ExitStack() as locks:
        if int(os.environ.get("RANK", 0)) == 0:
            for folder in sorted(folders):
                locks.enter_context(output_lock(folder))
        yield


# ---------------------------------------------------------------------------------------------- the pipeline


def _accepting_the_old_keyword_call(train):
    """Lets `train_drafter` take its 0.1 call, `train_drafter(dataset, output_dir, target=..., ...)` (22 parameters
    by now), for one more release: warns (DeprecationWarning) and passes the same options in the dataclasses."""

    @functools.wraps(train)
    def accepting(*args, **kwargs):
        old_call = (len(args) > 1 and isinstance(args[1], (str, os.PathLike))) or bool(set(kwargs) & _OLD_ONLY)
        if not old_call:
            return train(*args, **kwargs)
        warnings.warn(
            "train_drafter(dataset, output_dir, target=..., ...) is deprecated and goes away in the next release: "
            "call train_drafter(dataset, DrafterArguments(out=..., ...), DataArguments(...), training_args).",
            DeprecationWarning,
            stacklevel=2,
        )
        new_args, new_kwargs = _from_old_call(inspect.signature(_old_signature).bind(*args, **kwargs))
        return train(*new_args, **new_kwargs)

    return accepting


@_accepting_the_old_keyword_call
def train_drafter(
    dataset: "datasets.Dataset",
    drafter_args: DrafterArguments,
    data_args: DataArguments | None = None,
    training_args: TrainingArguments | None = None,
    *,
    target: PreTrainedModel | None = None,
    drafter: PreTrainedModel | None = None,
    eval_dataset: "datasets.Dataset | None" = None,
    callbacks: list[TrainerCallback] | None = None,
) -> EagleTrainer:
    """
    The `hf-eagle31 train` pipeline as a function, on a loaded `dataset` (rows of `input_ids` and `loss_mask`, e.g.
    `data.prepare.load_prepared`), with the options `hf-eagle31 train` parses:

    - `drafter_args` (`DrafterArguments`): `out` (required: where the drafter or adapter is saved), the target
      (`target`, `target_dtype`, `target_name_or_path`), a fresh drafter's shape (`variant`, `draft_vocab_size`,
      `num_layers`, `intermediate_size`, `head_init`) or a trained one to continue (`init_from`,
      `trust_remote_code`), LoRA (`lora_r` > 0, `lora_alpha`, `lora_dropout`, `lora_target_modules`), the loss
      (`ttt_steps`, `loss_chunk_size`, `loss_objective`), `overwrite` and the time budget `max_minutes`
      (`merge_lora` and `estimate_memory` are the command's);
    - `data_args` (`DataArguments`, default: its defaults): `offline_features` (a feature directory: train from
      precomputed features; those missing are computed first and the target is released before training) and
      `loss_tokens`; `data` / `eval_fraction` / `features_only` are the command's and are not read here;
    - `training_args` (transformers' `TrainingArguments`, default: `output_dir=out`, `report_to="none"`).

    Loaded models, in place of names: `target` (a loaded target; otherwise `drafter_args.target` is loaded, and not
    at all when the offline features are complete; `drafter_args.target=None` trains from complete features only)
    and `drafter` (a trained drafter to continue, in place of `init_from`). `eval_dataset`: held-out rows, evaluated
    at the end (and by `eval_strategy`). `callbacks`: more `TrainerCallback`s.

    A fresh drafter gets its draft vocabulary from `dataset`'s assistant tokens and, with `head_init="target"`, its
    `lm_head` from the target's LM head rows of that vocabulary. `loss_tokens="all"` puts the loss on every position
    (the target's distribution is the label everywhere, prompts included). `max_minutes`: past it, the step that
    ends is saved as a checkpoint in `training_args.output_dir` and training stops; a run stopped short of
    `max_steps` writes no drafter to `out` (`trainer.stopped_by_budget` is True) and resumes with
    `resume_from_checkpoint="latest"`. A drafter already in `out` is refused unless `overwrite`, and another run's
    checkpoints are never written over (`check_training_outputs`).

    Returns the trainer (its model trained; the drafter or adapter saved to `out` unless the budget stopped it).
    """
    if not isinstance(drafter_args, DrafterArguments):
        raise InputError(
            f"train_drafter takes DrafterArguments second, not {type(drafter_args).__name__}: "
            "train_drafter(dataset, DrafterArguments(out=DIR, ...), DataArguments(...), training_args)."
        )
    if drafter_args.out is None:
        raise InputError("train_drafter needs DrafterArguments(out=DIR): where the trained drafter is saved.")
    for name, model, field in (("target", target, "target"), ("drafter", drafter, "init_from")):
        if isinstance(model, (str, os.PathLike)):
            raise InputError(
                f"{name}= takes a loaded model: pass a name or path as DrafterArguments({field}={os.fspath(model)!r})."
            )
    if drafter is not None and drafter_args.init_from:
        raise InputError(
            f"a drafter was passed and DrafterArguments(init_from={drafter_args.init_from!r}) names another: "
            "drop one of them."
        )
    args = training_args or TrainingArguments(output_dir=drafter_args.out, report_to="none")
    with _output_locks(drafter_args.out, args.output_dir):
        return _train(
            dataset, drafter_args, data_args or DataArguments(), args, target, drafter, eval_dataset, callbacks
        )


def _train(dataset, drafter_args, data_args, args, target, drafter, eval_dataset, callbacks) -> EagleTrainer:
    """`train_drafter` once its outputs are locked."""
    feature_dir = data_args.offline_features
    if target is None and drafter_args.target is None and feature_dir is None:
        raise InputError("pass the target (online training) or a feature directory (offline training).")
    if drafter is not None and (drafter_args.num_layers != 1 or drafter_args.intermediate_size is not None):
        raise InputError(
            "num_layers / intermediate_size shape a fresh drafter, but a trained drafter was given: its checkpoint "
            "fixes its shape; drop one of them."
        )
    max_minutes = drafter_args.max_minutes
    budget = TrainingTimeBudget(max_minutes) if max_minutes is not None else None  # checks the value first
    check_training_outputs(
        drafter_args.out,
        args.output_dir,
        drafter_args.overwrite,
        args.resume_from_checkpoint,
        saves_checkpoints=args.save_strategy != "no" or budget is not None,  # a budget's stop is a checkpoint
    )
    check_has_loss_tokens(dataset)
    check_ttt_steps(drafter_args.ttt_steps, dataset)
    target_name = drafter_args.target_name_or_path
    if target is None and drafter_args.target is not None:
        if target_name is None:
            target_name = targets.target_hub_id(drafter_args.target)
        target = load_target_for_features(drafter_args.target, feature_dir, drafter_args.torch_target_dtype())
    if drafter is None and drafter_args.init_from:
        drafter = load_drafter_checkpoint(drafter_args.init_from, trust_remote_code=drafter_args.trust_remote_code)
    text = target_text_config_for_features(target, feature_dir)
    fresh = drafter is None
    if fresh:
        d = min(drafter_args.draft_vocab_size, text.vocab_size)
        drafter = build_drafter(text, drafter_args.variant, draft_vocab_size=d, **drafter_args.drafter_overrides())
        if d < text.vocab_size:
            draft_vocab_from_dataset(dataset, text.vocab_size, d).apply(drafter)
    if target_name is not None:
        drafter.config.target_name_or_path = target_name
    if data_args.loss_tokens == "all":
        dataset = with_loss_on_every_token(dataset)
    teacher_head = teacher_bias = None
    train_data = dataset
    if feature_dir is not None:
        if target is not None:
            precompute_training_features(target, dataset, drafter.config.target_layer_ids, feature_dir, eval_dataset)
            if not drafter.embeddings_ready:
                drafter.load_target_embeddings(target)
            target = None  # offline: the trainer never holds it
        train_data = FeatureDataset(feature_dir, drafter.config.target_layer_ids)
        if eval_dataset is not None:
            eval_dataset = FeatureDataset(feature_dir + "-eval", drafter.config.target_layer_ids)
        embed, teacher_head, teacher_bias = train_data.load_head()
        if not drafter.embeddings_ready:
            drafter.load_target_embeddings(embed)
        head = teacher_head
    else:
        if not drafter.embeddings_ready:
            drafter.load_target_embeddings(target)
        head = output_head(target)[0]
    if fresh and drafter_args.head_init == "target":
        drafter.init_lm_head_from_target(head)
    lora = drafter_args.lora_r > 0
    model = drafter
    if lora:
        model = apply_lora(
            drafter,
            r=drafter_args.lora_r,
            alpha=drafter_args.lora_alpha,
            dropout=drafter_args.lora_dropout,
            target_modules=drafter_args.lora_target_modules,
        )
    trainer = EagleTrainer(
        model=model,
        args=args,
        target=target,
        teacher_head=teacher_head,
        teacher_head_bias=teacher_bias,
        ttt_steps=drafter_args.ttt_steps,
        train_dataset=train_data,
        eval_dataset=eval_dataset,
        callbacks=[*(callbacks or []), *([budget] if budget else [])] or None,
        loss_chunk_size=drafter_args.loss_chunk_size,
        loss_objective=drafter_args.loss_objective,
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    if trainer.finished_before and has_final_weights(drafter_args.out):
        return trainer  # a finished run re-run: its saved drafter stays as it is
    if trainer.stopped_by_budget:
        return trainer  # not finished: its last step is a checkpoint, the drafter is saved when a resume completes it
    save_final(trainer, drafter_args.out, model_card=not lora)
    if eval_dataset is not None:
        # The final evaluation (of the best checkpoint with `load_best_model_at_end`): the held-out loss and the
        # teacher-forced agreement, logged and written to `eval_results.json` in the checkpoint folder. Taken from
        # the log when the Trainer already evaluated these weights at the last step.
        trainer.save_metrics("eval", _last_evaluation(trainer) or trainer.evaluate(), combined=False)
    return trainer


def _last_evaluation(trainer: EagleTrainer) -> dict | None:
    """The evaluation logged at the last step, if the trainer ends with the weights it evaluated
    (`load_best_model_at_end` did not load another checkpoint since); None otherwise."""
    state, step = trainer.state, trainer.state.global_step
    logged = [h for h in state.log_history if "eval_loss" in h and h.get("step") == step]
    best = state.best_model_checkpoint
    if not logged or (trainer.args.load_best_model_at_end and best and os.path.basename(best) != f"checkpoint-{step}"):
        return None
    return {k: v for k, v in logged[-1].items() if k.startswith("eval_")}


# ---------------------------------------------------------------------------------------------- the 0.1 call


def _old_signature(
    dataset,
    output_dir,
    target=None,
    feature_dir=None,
    variant="eagle3.1",
    draft_vocab_size=None,
    ttt_steps=DEFAULT_TTT_STEPS,
    training_args=None,
    drafter=None,
    eval_dataset=None,
    lora=None,
    callbacks=None,
    target_name_or_path=None,
    head_init="target",
    overwrite=False,
    target_dtype=torch.float32,
    trust_remote_code=False,
    drafter_overrides=None,
    loss_chunk_size=0,
    loss_tokens="assistant",
    loss_objective="soft_ce",
    max_minutes=None,
):
    """The parameters of `train_drafter` before the dataclasses (0.1's, plus `loss_objective` and `max_minutes`);
    bound by `_accepting_the_old_keyword_call`, never called."""


# keywords only the old call has (`target`, `drafter`, `training_args`, ... are in both)
_OLD_ONLY = set(inspect.signature(_old_signature).parameters) - set(inspect.signature(train_drafter).parameters)
_LORA_KEYS = {"r": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout", "target_modules": "lora_target_modules"}


def _from_old_call(call: inspect.BoundArguments) -> tuple[tuple, dict]:
    """The new `train_drafter` arguments that run what an old call asked for."""
    call.apply_defaults()
    old = call.arguments
    target, drafter = old["target"], old["drafter"]
    overrides = dict(old["drafter_overrides"] or {})
    shape = {
        "num_layers": overrides.pop("num_hidden_layers", 1),
        "intermediate_size": overrides.pop("intermediate_size", None),
    }
    if overrides:
        raise InputError(
            f"drafter_overrides {sorted(overrides)}: only num_hidden_layers and intermediate_size have a "
            "DrafterArguments field (num_layers, intermediate_size); build other drafters with build_drafter(...) "
            "and pass them as drafter=."
        )
    dtype = old["target_dtype"]
    drafter_args = DrafterArguments(
        out=os.fspath(old["output_dir"]),
        target=os.fspath(target) if isinstance(target, (str, os.PathLike)) else None,  # a loaded one: target=
        target_dtype=dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch."),
        target_name_or_path=old["target_name_or_path"],
        variant=old["variant"],
        ttt_steps=old["ttt_steps"],
        draft_vocab_size=32000 if old["draft_vocab_size"] is None else old["draft_vocab_size"],
        head_init=old["head_init"],
        loss_chunk_size=old["loss_chunk_size"],
        loss_objective=old["loss_objective"],
        init_from=os.fspath(drafter) if isinstance(drafter, (str, os.PathLike)) else None,
        trust_remote_code=old["trust_remote_code"],
        overwrite=old["overwrite"],
        max_minutes=old["max_minutes"],
        **shape,
    )
    if old["lora"]:
        unknown = set(old["lora"]) - set(_LORA_KEYS)
        if unknown:
            raise TypeError(f"lora= takes the arguments of apply_lora ({', '.join(_LORA_KEYS)}), not {sorted(unknown)}")
        # Set after the checks: the old call also trained an adapter on a fresh or in-memory drafter, which the
        # command line's check (--lora-r needs --init-from) cannot see.
        for key, field in _LORA_KEYS.items():
            if key in old["lora"]:
                setattr(drafter_args, field, old["lora"][key])
        if "r" not in old["lora"]:
            drafter_args.lora_r = 8  # apply_lora's default rank
    data_args = DataArguments(offline_features=old["feature_dir"], loss_tokens=old["loss_tokens"])
    loaded = {
        "target": None if isinstance(target, (str, os.PathLike)) else target,
        "drafter": None if isinstance(drafter, (str, os.PathLike)) else drafter,
    }
    return (old["dataset"], drafter_args, data_args, old["training_args"]), {
        **loaded,
        "eval_dataset": old["eval_dataset"],
        "callbacks": old["callbacks"],
    }
