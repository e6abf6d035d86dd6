# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Training drafters with the HF `Trainer` (train-time test, EAGLE-3 style; see ARCHITECTURE.md).

`EagleTrainer` is a `Trainer` whose model is the drafter. The frozen target supplies features and teacher logits on
the fly (online), or `FeatureDataset` supplies them from precomputed shards (offline, no target in memory); both
give the same loss. Everything `TrainingArguments` offers works as usual (logging, eval, checkpoints and resume,
callbacks, `report_to`, gradient accumulation, `accelerate launch` / DDP / FSDP / DeepSpeed), and
`trainer.save_model()` writes a drafter directory that loads with `AutoModel.from_pretrained(dir,
trust_remote_code=True)`.

Loss, for TTT step j (0-based) at position t, with n tokens x_0..x_{n-1} (see `ttt_loss`):

    drafter logits_j[t] predict x_{t+2+j}; teacher = softmax(z_{t+1+j}) over the draft vocabulary, where z are the
    target's logits (only the D draft rows of its LM head are ever applied);
    valid_j[t] = t + 2 + j < n  and  loss_mask[x_{t+2+j}]  and  argmax(z_{t+1+j}) is in the draft vocabulary;
    loss = sum_j 0.8^j * sum_t valid_j[t] * CE(teacher, drafter) / N

N is the number of assistant positions that step 0 could predict (`loss_mask[t+2]`) in the *whole optimizer step*
(every gradient-accumulation micro-batch on every process), so accumulating k micro-batches yields the same gradient
as one k-times larger batch. Per-step loss and accuracy are logged as `ttt_loss_{j}` / `ttt_acc_{j}` (means over
that step's valid positions).

Evaluation adds the teacher-forced agreement of `hf-eagle31 eval --teacher-forced` from the same unroll (the target's
greedy token is the argmax the loss already has, so no extra forward): `eval_acc{k}_depth{d}`, `eval_tau_chain` and
bootstrap half-widths (`EagleTrainer._agreement_metrics`; the math is `hf_eagle31.agreement`'s).
"""

import contextlib
import functools
import inspect
import json
import os
import pickle
import re
import shutil
import signal
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainerCallback, TrainerState, TrainingArguments
from transformers.trainer_utils import TrainOutput
from transformers.utils import logging

from .. import targets
from ..agreement import chain_ranks, point_and_interval, position_metrics, target_to_draft_ids
from ..data.prepare import with_loss_on_every_token
from ..errors import InputError, modeling_checks_are_input_errors, one_line
from ..features import (
    FeatureDataset,
    capture_target_features,
    chunked_argmax,
    draft_teacher_logits,
    output_head,
    precompute_features,
)
from ..hub import write_model_card
from ..loading import load_drafter_checkpoint
from ..modeling import DRAFTER_CLASSES, VARIANTS, variant_classes
from ..modeling.drafter_common import DrafterPreTrainedModel
from ..utils import text_config
from ..utils.io import output_lock, read_errors_name, write_errors_name
from .draft_vocab import draft_vocab_from_dataset
from .loss import DEFAULT_TTT_DECAY, LOSS_OBJECTIVES, loss_token_count, ttt_loss


if TYPE_CHECKING:  # annotations only
    import datasets
    from peft import PeftModel


logger = logging.get_logger(__name__)

DEFAULT_TTT_STEPS = 7  # EAGLE-3


# ---------------------------------------------------------------------------------------------- data


class DrafterDataCollator:
    """
    Right-pads rows of `input_ids`, `loss_mask` (and, offline, `target_hidden_states`, `target_final_hidden`,
    `teacher_argmax`) and adds `attention_mask`. Right padding keeps rotary positions 0..n-1 in every row, as the
    target saw them; padded positions are masked out of the loss.
    """

    def __init__(self, pad_token_id: int = 0, max_length: int | None = None):
        self.pad_token_id = pad_token_id
        self.max_length = max_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [min(len(r["input_ids"]), self.max_length or len(r["input_ids"])) for r in rows]
        if min(lengths) == 0:
            raise InputError("a training row has no tokens: drop empty rows when preparing data (prepare-data does).")
        width = max(lengths)
        batch = {}
        pads = {"input_ids": self.pad_token_id, "loss_mask": 0, "teacher_argmax": -1}
        for key in rows[0]:
            if key not in pads and key not in ("target_hidden_states", "target_final_hidden"):
                continue  # e.g. the `messages` text column
            values = [torch.as_tensor(r[key])[: lengths[i]] for i, r in enumerate(rows)]
            shape = (len(rows), width, *values[0].shape[1:])
            dtype = values[0].dtype if values[0].is_floating_point() else torch.long
            out = torch.full(shape, pads.get(key, 0), dtype=dtype)
            for i, v in enumerate(values):
                out[i, : lengths[i]] = v
            batch[key] = out
        attention = torch.zeros(len(rows), width, dtype=torch.long)
        for i, n in enumerate(lengths):
            attention[i, :n] = 1
        batch["attention_mask"] = attention
        return batch


# ---------------------------------------------------------------------------------------------- checkpoints, outputs


TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last: a checkpoint without it was cut short
FINAL_MODEL_FILES = ("config.json", "model.safetensors", "adapter_config.json", "adapter_model.safetensors")
FINAL_WEIGHTS = ("model.safetensors", "adapter_model.safetensors")  # moved in last: a drafter is there iff these are
FINAL_PARTIAL = ".final.partial"  # the final save is written here inside --out, then moved into place
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def checkpoint_dirs(folder: str | None) -> list[str]:
    """The `checkpoint-<step>` directories in `folder`, lowest step first."""
    if not folder or not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        match = _CHECKPOINT.fullmatch(name)
        if match and os.path.isdir(os.path.join(folder, name)):
            found.append((int(match.group(1)), os.path.join(folder, name)))
    return [path for _, path in sorted(found)]


def _read_state(path: str) -> dict | None:
    try:
        with open(os.path.join(path, TRAINER_STATE), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _checkpoint_state(path: str) -> dict | None:
    """The checkpoint's trainer_state.json, or None when it is missing, unreadable or lacks the step counts."""
    state = _read_state(path)
    if state is None or not all(isinstance(state.get(k), int) for k in ("global_step", "max_steps")):
        return None
    return state


def is_complete_checkpoint(path: str) -> bool:
    """True when the Trainer finished writing `path`: its trainer_state.json (written last) exists, parses and holds
    the step counts (a damaged one counts as partial: resume skips it)."""
    return _checkpoint_state(path) is not None


def has_final_weights(folder: str) -> bool:
    """Whether `folder` holds a saved drafter or adapter: its weights, which the final save moves in last."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in FINAL_WEIGHTS)


def check_finite(model: torch.nn.Module, when: str) -> None:
    """Refuses weights with NaN / inf (a diverged run) in one line naming the first bad tensor."""
    for name, param in model.named_parameters():
        if param.is_floating_point() and not bool(torch.isfinite(param.detach()).all()):
            raise InputError(
                f"training diverged {when}: weight {name} holds NaN/inf; lower --learning_rate (or add "
                "--max_grad_norm), and resume from the last finite checkpoint."
            )


def _resume_requested(resume: str | bool | None) -> bool:
    return resume is not None and resume is not False and str(resume).strip().lower() not in ("", "false", "none", "no")


def resolve_resume_checkpoint(resume: str | bool | None, output_dir: str | None) -> str | None:
    """
    The checkpoint to resume from, never a partial one (a save killed half-way):

    - None / False / "" / "false": None (no resume);
    - True / "latest" / "last" / "true": the newest complete checkpoint in `output_dir`;
    - a checkpoint directory: itself when complete, else the newest complete one beside it with a lower step
      (a warning names the partial one).
    """
    if not _resume_requested(resume):
        return None
    asked = None
    if resume is True or str(resume).strip().lower() in ("true", "latest", "last", "yes"):
        folder = output_dir
    else:
        asked = os.path.normpath(str(resume))
        if not os.path.isdir(asked):
            raise InputError(
                f"--resume_from_checkpoint {asked} is not a directory: pass a checkpoint-N directory, or 'latest' "
                "(the newest complete checkpoint in --output_dir)."
            )
        if is_complete_checkpoint(asked):
            _check_checkpoint_weights(asked)
            return asked
        folder = os.path.dirname(os.path.abspath(asked))
    steps = {p: int(_CHECKPOINT.fullmatch(os.path.basename(p)).group(1)) for p in checkpoint_dirs(folder)}
    if asked is not None:  # an older checkpoint of the same run, never a newer one
        match = _CHECKPOINT.fullmatch(os.path.basename(asked))
        steps = {p: step for p, step in steps.items() if match and step < int(match.group(1))}
    complete = [p for p in steps if is_complete_checkpoint(p)]
    if not complete:
        what = f"{asked} is incomplete (no {TRAINER_STATE}) and there is no older" if asked else "there is no"
        raise InputError(
            f"{what} complete checkpoint in {folder} to resume from: train without --resume_from_checkpoint."
        )
    chosen = complete[-1]
    _check_checkpoint_weights(chosen)
    skipped = [asked] if asked else [p for p in steps if steps[p] > steps[chosen]]
    if skipped:
        logger.warning(
            "skipping incomplete checkpoint(s) %s (no %s: the save was interrupted); resuming from %s",
            ", ".join(skipped),
            TRAINER_STATE,
            chosen,
        )
    return chosen


# what `Trainer._load_from_checkpoint` loads a checkpoint's model from (whole, sharded, adapter, FSDP shards)
CHECKPOINT_WEIGHTS = re.compile(
    r"(model|pytorch_model|adapter_model)\.(safetensors|bin)(\.index\.json)?|model\.safetensors\.index\.json|"
    r"pytorch_model\.bin\.index\.json|pytorch_model_fsdp.*"
)


def _check_checkpoint_weights(path: str) -> None:
    """A complete checkpoint (its trainer_state.json is there) whose weights are gone was damaged after the save:
    refused naming it, never resumed (the Trainer's "Can't find a valid checkpoint" names no fix)."""
    if not any(CHECKPOINT_WEIGHTS.fullmatch(name) for name in os.listdir(path)):
        raise InputError(
            f"--resume_from_checkpoint {path} has no weights (model.safetensors): the checkpoint was damaged or copied "
            "without them; resume from another checkpoint-N, or train without --resume_from_checkpoint."
        )


def check_training_outputs(
    out: str,
    output_dir: str | None = None,
    overwrite: bool = False,
    resume: str | bool | None = None,
    saves_checkpoints: bool = True,
) -> None:
    """
    Refuses, before any compute, to destroy earlier work: a trained drafter (or adapter) already in `out` needs
    `overwrite=True`; checkpoints of another run in the checkpoint folder (`output_dir`, default `out`) are never
    written over (the Trainer would replace same-step ones and `save_total_limit` would delete the others) unless
    the run resumes from them.
    """
    if _resume_requested(resume):
        return  # resuming: these files belong to the run being continued
    final = [name for name in FINAL_WEIGHTS if os.path.isfile(os.path.join(out, name))]
    if final and not overwrite:
        raise InputError(
            f"{out} already holds a trained drafter ({final[0]}): pass --overwrite to replace it, or choose "
            "another --out."
        )
    folder = output_dir or out
    old = [p for p in checkpoint_dirs(folder) if _read_state(p) is not None]  # partial ones hold nothing to keep
    if old and saves_checkpoints:
        names = ", ".join(os.path.basename(p) for p in old[:3]) + (", ..." if len(old) > 3 else "")
        raise InputError(
            f"{folder} holds checkpoints of an earlier run ({names}): continue it with --resume_from_checkpoint "
            "latest, or use another --output_dir (this run's checkpoints would overwrite or rotate them away)."
        )


def _fault_point(name: str) -> None:
    """Fault-injection hook of the test suite: `HF_EAGLE31_KILL_AT=name` SIGKILLs this process here (the slow tier
    checks what a run killed at each save point leaves behind). A no-op unless set."""
    if os.environ.get("HF_EAGLE31_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def save_final(trainer: "EagleTrainer", output_dir: str, model_card: bool) -> None:
    """
    The trained drafter (or adapter) into `output_dir`, never half: written to `output_dir/.final.partial`, then
    moved in file by file with the weights last (`has_final_weights` is what marks a saved drafter), after a check
    that every weight is finite. Write failures name the folder and what happened.
    """
    check_finite(trainer.model, "by the end of training")
    partial = os.path.join(output_dir, FINAL_PARTIAL)
    with write_errors_name(output_dir):
        if trainer.args.should_save and os.path.isdir(partial):
            shutil.rmtree(partial)
        try:
            trainer.save_model(partial)
            if not trainer.args.should_save:
                return
            if model_card:
                write_model_card(trainer.model, partial)  # README.md next to the drafter (hub.py; adapters: peft's)
        except BaseException:
            if trainer.args.should_save:  # a failed save (no space, read-only, ...) leaves no half behind
                shutil.rmtree(partial, ignore_errors=True)
            raise
        _fault_point("final")
        names = sorted(os.listdir(partial), key=lambda n: n in FINAL_WEIGHTS)  # weights last
        for name in names:
            os.replace(os.path.join(partial, name), os.path.join(output_dir, name))
        os.rmdir(partial)


def check_max_minutes(value, flag: str = "--max-minutes") -> None:
    """A time budget in minutes is a finite number > 0 (0 would stop before the first step); one line otherwise."""
    if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
        raise InputError(f"{flag} {value}: pass a number of minutes > 0, e.g. 9.")


class TrainingTimeBudget(TrainerCallback):
    """
    Stops a run after `max_minutes` of wall time (counted from this call's `on_train_begin`, so every resumed call
    gets the whole budget; loading the target and data before it is not counted). Checked at each optimizer step's
    end: once over, that step is saved as a checkpoint and training stops there. A run it stops short of
    `max_steps` is not finished: `EagleTrainer.stopped_by_budget` is True, `train_drafter` writes no final drafter,
    and `--resume_from_checkpoint latest` continues it to `max_steps` (a stop at the last step is a normal finish).
    The last step is saved as a checkpoint as well (whatever the save strategy), so that a resume after the call
    that finished finds the run finished and trains nothing.
    Under DDP the processes agree (the longest clock wins) so that all stop at the same step.
    """

    def __init__(self, max_minutes: float):
        check_max_minutes(max_minutes)
        self.max_minutes = float(max_minutes)
        self.started = None
        self.stopped_at = None  # the global step the budget stopped this call at (None: it did not)

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()
        self.stopped_at = None

    def _over_budget(self, args) -> bool:
        over = time.monotonic() - self.started >= self.max_minutes * 60
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([float(over)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            over = bool(flag.item())
        return over

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = True  # the last step too (even without --save_steps): a resume finds it finished
            return control
        if self.started is None or not self._over_budget(args):
            return control
        self.stopped_at = state.global_step
        control.should_save = True
        control.should_training_stop = True
        return control


# ---------------------------------------------------------------------------------------------- trainer


def unwrap_drafter(model: torch.nn.Module) -> PreTrainedModel:
    """The `DrafterPreTrainedModel` inside DDP / FSDP / DeepSpeed / PEFT wrappers."""
    seen = model
    for _ in range(8):
        if isinstance(seen, DrafterPreTrainedModel) or _is_remote_code_drafter(seen):
            return seen
        if hasattr(seen, "get_base_model"):
            seen = seen.get_base_model()
        elif hasattr(seen, "module"):
            seen = seen.module
        else:
            break
    raise InputError(f"{type(model).__name__} does not wrap an hf-eagle31 drafter: pass an Eagle3Drafter / MtpDrafter.")


def _is_remote_code_drafter(model):
    """A drafter loaded with `trust_remote_code` is an instance of the checkpoint's copy of the classes, not ours."""
    return any(cls.__name__ == "DrafterPreTrainedModel" for cls in type(model).__mro__) and hasattr(
        model, "ttt_forward"
    )


def _forward_takes_return_dict(drafter) -> bool:
    """False for remote code saved before `DrafterOutput.ttt_logits`: its `forward(ttt_steps=N)` returns the list."""
    return "return_dict" in inspect.signature(type(drafter).forward).parameters


def _ttt_step_logits(model, input_ids, target_hidden_states, ttt_steps, return_dict=True):
    """
    The per-step logits of `drafter.ttt_forward`, computed through `model(...)`: DDP / FSDP / DeepSpeed / PEFT wrappers
    and accelerate's mixed-precision autocast all act on the drafter's `forward`, so the unroll must go through it.
    `return_dict`: `_forward_takes_return_dict(drafter)`, decided once per trainer.
    """
    if return_dict:
        out = model(
            input_ids=input_ids, target_hidden_states=target_hidden_states, ttt_steps=ttt_steps, return_dict=True
        )
        return list(out.ttt_logits)
    return model(input_ids=input_ids, target_hidden_states=target_hidden_states, ttt_steps=ttt_steps)


class EagleTrainer(Trainer):
    """
    `Trainer` for drafters. `model` is the drafter (or a PEFT model around one).

    Online: pass `target` (frozen, kept on `args.device`, never wrapped or saved); the dataset rows hold `input_ids`
    and `loss_mask`. Offline: pass a `FeatureDataset` as `train_dataset` and its `teacher_head` (the target's LM head
    weight, `FeatureDataset.load_head()[1]`) instead of a target.

    ttt_steps: TTT unroll length (EAGLE-3: 7). ttt_decay: per-step loss weight base (0.8^j).
    argmax_chunk_size: positions per chunk when the target's full-vocabulary argmax is computed online.
    loss_chunk_size: > 0 computes the loss in checkpointed chunks of that many positions (`ttt_loss`'s `chunk_size`:
        less memory for backward, same gradients); 0 = all positions at once.
    eval_top_ks: the k of the teacher-forced agreement metrics `evaluate` reports (`eval_acc{k}_depth{d}`; k = 1 is
        always included; None = no agreement metrics, the loss and `ttt_*` only). See `_agreement_metrics`.
    eval_resamples: bootstrap resamples of the `*_halfwidth` intervals (0 = no intervals).
    """

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        args: TrainingArguments | None = None,
        target: PreTrainedModel | None = None,
        teacher_head: torch.Tensor | None = None,
        teacher_head_bias: torch.Tensor | None = None,
        ttt_steps: int = DEFAULT_TTT_STEPS,
        ttt_decay: float = DEFAULT_TTT_DECAY,
        argmax_chunk_size: int = 1024,
        loss_chunk_size: int = 0,
        loss_objective: str = "soft_ce",
        data_collator=None,
        eval_top_ks: tuple[int, ...] | None = (1, 4),
        eval_resamples: int = 1000,
        **kwargs,
    ):
        drafter = unwrap_drafter(model)
        if target is None and teacher_head is None:
            raise InputError(
                "EagleTrainer needs the frozen `target` (online training) or `teacher_head=` the target's LM head "
                "weight with a FeatureDataset (offline training)."
            )
        if ttt_steps < 1:
            raise InputError(f"ttt_steps={ttt_steps}: the TTT unroll needs at least one step.")
        if data_collator is None:
            pad = drafter.config.pad_token_id if drafter.config.pad_token_id is not None else 0
            data_collator = DrafterDataCollator(pad_token_id=pad)
        super().__init__(model=model, args=args, data_collator=data_collator, **kwargs)
        # compute_loss divides by the token count of the whole optimizer step (see the module docstring).
        self.loss_is_scaled_for_ga = True
        self.ttt_steps = int(ttt_steps)
        self.ttt_decay = float(ttt_decay)
        self.argmax_chunk_size = argmax_chunk_size
        self.loss_chunk_size = int(loss_chunk_size)
        if loss_objective not in LOSS_OBJECTIVES:
            raise InputError(f"unknown loss objective {loss_objective!r}: use one of {', '.join(LOSS_OBJECTIVES)}.")
        self.loss_objective = loss_objective
        self.target = target
        if target is not None:
            drafter.check_target(target.config)
            target.requires_grad_(False).eval().to(self.args.device)
            teacher_head, teacher_head_bias = output_head(target)
        self.teacher_head = teacher_head.to(self.args.device)
        self.teacher_head_bias = teacher_head_bias.to(self.args.device) if teacher_head_bias is not None else None
        self._ttt_stats = {"train": None, "eval": None}
        self.eval_top_ks = None if eval_top_ks is None else tuple(sorted({int(k) for k in eval_top_ks} | {1}))
        if self.eval_top_ks is not None and self.eval_top_ks[0] < 1:
            raise InputError(f"eval_top_ks={eval_top_ks}: every k must be >= 1.")
        self.eval_resamples = int(eval_resamples)
        self._agreement = []  # per evaluated sequence: (sums, counts) of `agreement.position_metrics`
        self._agreement_names = (  # the metric names of `agreement.position_metrics`, fixed by top-k and depth
            None
            if self.eval_top_ks is None
            else position_metrics(np.full((self.ttt_steps, 1), -1), self.eval_top_ks)[0]
        )
        self._check_metric_for_best_model()
        self._forward_returns_dict = _forward_takes_return_dict(drafter)
        self.finished_before = False  # set by `train`: the resumed checkpoint was already at max_steps
        self.stopped_by_budget = False  # set by `train`: a `TrainingTimeBudget` stopped it short of max_steps

    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        """`Trainer.train`, resuming only from a complete checkpoint (`resolve_resume_checkpoint`: "latest" / True
        is the newest complete one in `output_dir`; a partial one falls back to the newest complete one before it).
        `max_steps` is the run's total: a checkpoint already at it is loaded and not trained further
        (`finished_before` is then True); raise `max_steps` to extend the run. A run a `TrainingTimeBudget` stopped
        short of `max_steps` sets `stopped_by_budget` (its last step is saved as a checkpoint; not finished)."""
        resume = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir)
        self.finished_before = self.stopped_by_budget = False
        state = _checkpoint_state(resume) if resume else None
        if state is not None and self._run_is_finished(state):
            logger.warning(
                "%s is at step %d of --max_steps %d: the run is finished, nothing to train (raise --max_steps to "
                "extend it).",
                resume,
                state["global_step"],
                self.args.max_steps if self.args.max_steps > 0 else state["max_steps"],
            )
            self._load_from_checkpoint(resume)
            self.state = TrainerState.load_from_json(os.path.join(resume, TRAINER_STATE))
            self.finished_before = True
            return TrainOutput(self.state.global_step, 0.0, {})
        output = super().train(resume, *args, **kwargs)
        budgets = [c for c in self.callback_handler.callbacks if isinstance(c, TrainingTimeBudget)]
        self.stopped_by_budget = any(b.stopped_at is not None for b in budgets) and (
            self.state.global_step < self.state.max_steps
        )
        return output

    def _run_is_finished(self, state: dict) -> bool:
        if self.args.max_steps > 0:
            return state["global_step"] >= self.args.max_steps
        epochs = state.get("num_train_epochs")
        return (
            isinstance(epochs, (int, float))
            and self.args.num_train_epochs <= epochs
            and (state["global_step"] >= state["max_steps"] > 0)
        )

    def _load_from_checkpoint(self, resume_from_checkpoint, *args, **kwargs):
        # a truncated model.safetensors in a checkpoint is a read failure of that checkpoint, named with the fix
        fix = "resume from another checkpoint-N (--resume_from_checkpoint DIR/checkpoint-N)"
        with read_errors_name(resume_from_checkpoint, "the checkpoint's weights", fix):
            return super()._load_from_checkpoint(resume_from_checkpoint, *args, **kwargs)

    def _load_optimizer_and_scheduler(self, checkpoint):
        try:
            return super()._load_optimizer_and_scheduler(checkpoint)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as error:
            raise InputError(
                f"{checkpoint}: the optimizer / scheduler state is unreadable ({one_line(error)[:120]}): the file "
                "is truncated or corrupt; resume from an older checkpoint (--resume_from_checkpoint DIR/checkpoint-N)."
            ) from error

    def training_step(self, model, inputs, *args, **kwargs):
        loss = super().training_step(model, inputs, *args, **kwargs)
        if not bool(torch.isfinite(loss.detach()).all()):
            kept = [p for p in checkpoint_dirs(self.args.output_dir) if is_complete_checkpoint(p)]
            raise InputError(
                f"training diverged at step {self.state.global_step + 1}: the loss is {float(loss)}; lower "
                "--learning_rate (or add --max_grad_norm)"
                + (f"; the last finite checkpoint is {kept[-1]}." if kept else "; no checkpoint was saved.")
            )
        return loss

    def _save_checkpoint(self, model, trial):
        # trainer_state.json, written last, marks a complete checkpoint: remove a stale one before saving into an
        # existing folder (a resumed run passing the same step again), so that a killed save never looks complete.
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        check_finite(model, f"at step {self.state.global_step}")  # never saved: the last finite checkpoint stays
        if self.args.should_save and os.path.isfile(os.path.join(folder, TRAINER_STATE)):
            os.remove(os.path.join(folder, TRAINER_STATE))
        with write_errors_name(folder):
            super()._save_checkpoint(model, trial)

    def _save_optimizer_and_scheduler(self, output_dir):
        _fault_point("checkpoint")  # the weights are saved, trainer_state.json is not: a partial checkpoint
        super()._save_optimizer_and_scheduler(output_dir)

    # The columns a row must keep (the drafter's forward signature is the inference chain step, not ours).
    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = [
                "input_ids",
                "loss_mask",
                "target_hidden_states",
                "target_final_hidden",
                "teacher_argmax",
            ]

    def _get_num_items_in_batch(self, batch_samples, device):
        count = sum(loss_token_count(b["loss_mask"], b.get("attention_mask")) for b in batch_samples)
        count = torch.as_tensor(count, device=device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return count

    def _teacher(self, inputs, drafter):
        """(features, teacher_logits (B, n, D), teacher_argmax (B, n)) from the target or from the batch."""
        ids, attention = inputs["input_ids"], inputs["attention_mask"]
        draft_ids = drafter.draft_to_target_ids.to(self.teacher_head.device)
        if self.target is not None:
            features, final = capture_target_features(self.target, ids, attention, drafter.config.target_layer_ids)
            argmax = chunked_argmax(final, self.teacher_head, self.teacher_head_bias, self.argmax_chunk_size)
        else:
            if "target_hidden_states" not in inputs:
                raise InputError(
                    "offline training needs rows with precomputed features: pass a FeatureDataset as the dataset "
                    "(or pass `target=` for online training)."
                )
            features, final, argmax = (
                inputs["target_hidden_states"],
                inputs["target_final_hidden"],
                inputs["teacher_argmax"],
            )
        with torch.no_grad():
            teacher_logits = draft_teacher_logits(final, self.teacher_head, draft_ids, self.teacher_head_bias)
        return features, teacher_logits, argmax

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        drafter = unwrap_drafter(model)
        features, teacher_logits, argmax = self._teacher(inputs, drafter)
        step_logits = _ttt_step_logits(model, inputs["input_ids"], features, self.ttt_steps, self._forward_returns_dict)
        total, stats = ttt_loss(
            step_logits,
            teacher_logits,
            argmax,
            drafter.t2d,
            inputs["loss_mask"],
            inputs["attention_mask"],
            self.ttt_decay,
            self.loss_chunk_size,
            self.loss_objective,
        )
        mode = "train" if model.training else "eval"
        self._ttt_stats[mode] = stats if self._ttt_stats[mode] is None else self._ttt_stats[mode] + stats
        if mode == "eval" and self.eval_top_ks is not None:
            self._add_agreement(drafter, step_logits, argmax, inputs)
        if num_items_in_batch is None:  # evaluation, or a caller outside the training loop: this batch alone
            loss = total / loss_token_count(inputs["loss_mask"], inputs["attention_mask"]).clamp(min=1)
        else:
            loss = total / torch.as_tensor(num_items_in_batch).clamp(min=1)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                loss = loss * self.args.world_size  # DDP averages gradients over processes; the count is global
        return (loss, step_logits) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def _ttt_metrics(self, mode, prefix=""):
        stats = self._ttt_stats[mode]
        self._ttt_stats[mode] = None
        if stats is None:
            return {}
        if self.args.world_size > 1:
            stats = self.accelerator.reduce(stats.to(self.args.device), reduction="sum")
        metrics = {}
        for j in range(stats.shape[1]):
            count = float(stats[2, j])
            if count:
                metrics[f"{prefix}ttt_loss_{j}"] = round(float(stats[0, j]) / count, 4)
                metrics[f"{prefix}ttt_acc_{j}"] = round(float(stats[1, j]) / count, 4)
        return metrics

    def _check_metric_for_best_model(self):
        """Refuses, before training, a `metric_for_best_model` naming an agreement metric this trainer will not
        report (the Trainer would fail with a KeyError at the first evaluation)."""
        name = self.args.metric_for_best_model
        match = re.fullmatch(r"(?:eval_)?(?:acc(\d+)_depth(\d+)|tau_chain|acc1_depth1_halfwidth)", name or "")
        if match is None:
            return
        if self.eval_top_ks is None:
            raise InputError(
                f"metric_for_best_model={name!r} needs the agreement metrics: do not pass eval_top_ks=None."
            )
        if match.group(1) and (
            int(match.group(1)) not in self.eval_top_ks or not 1 <= int(match.group(2)) <= self.ttt_steps
        ):
            raise InputError(
                f"metric_for_best_model={name!r} is not reported: evaluation reports acc{{k}}_depth{{d}} for k in "
                f"{list(self.eval_top_ks)} and d = 1..{self.ttt_steps} (or use tau_chain)."
            )

    def _add_agreement(self, drafter, step_logits, argmax, inputs):
        """Teacher-forced agreement of this eval batch from the loss's own unroll (no extra forward): the ranks of
        the target's greedy tokens in the step logits (`agreement.chain_ranks`), kept as per-sequence sums."""
        mask = inputs["loss_mask"].bool() & inputs["attention_mask"].bool()
        to_draft = target_to_draft_ids(drafter).to(argmax.device)
        steps = [s.detach() for s in step_logits]
        ranks = chain_ranks(steps, argmax, to_draft, mask, max_rank=max(self.eval_top_ks)).cpu().numpy()
        rows = np.stack([np.concatenate(position_metrics(row, self.eval_top_ks)[1:]) for row in ranks])
        if self.args.world_size > 1:  # every process's rows, without the ones repeated to even out the last batch
            rows = self.accelerator.gather_for_metrics(torch.as_tensor(rows, device=self.args.device)).cpu().numpy()
        width = len(self._agreement_names)
        self._agreement.extend((row[:width], row[width:]) for row in rows)

    def _agreement_metrics(self, prefix=""):
        """
        The teacher-forced agreement of the evaluated rows, the numbers `eval --teacher-forced` reports, computed
        from the loss's unroll (the target's greedy token at each position = the argmax the loss already has):

        - `{prefix}acc{k}_depth{d}`: share of chain positions whose depth-d draft has the target's greedy token in
          its top k (k = 1: the drafter's argmax is the target's token), d = 1 .. ttt_steps;
        - `{prefix}tau_chain`: the expected accepted length of a greedy chain of K = ttt_steps drafts, bonus token
          counted, from the joint per-position indicators, over the positions where depth K is defined;
        - `{prefix}acc1_depth1_halfwidth`, `{prefix}tau_chain_halfwidth`: half the width of their 95% percentile
          interval, cluster bootstrap over rows (`eval_resamples` resamples, seed 0);
        - `{prefix}tf_positions`: chain positions at depth 1.

        A chain position t counts at depth d when x_{t+1} .. x_{t+1+d} are assistant tokens (the loss mask): the
        chain starts after an answer token and drafts answer tokens only. Unlike `ttt_acc_*`, a target token outside
        the draft vocabulary counts as a miss (a drafter cannot propose it). Several processes: every process's rows
        (gathered batch by batch like the Trainer's losses, `gather_for_metrics`).
        """
        rows, self._agreement = self._agreement, []
        if self._agreement_names is None:
            return {}
        width = len(self._agreement_names)
        sums = np.stack([s for s, _ in rows]) if rows else np.zeros((0, width))
        counts = np.stack([c for _, c in rows]) if rows else np.zeros((0, width))
        keep = counts.sum(1) > 0  # rows without a chain position carry no information
        sums, counts = sums[keep], counts[keep]
        if not len(sums):
            return {}
        value, low, high = point_and_interval(sums, counts, self.eval_resamples)
        index = {name: i for i, name in enumerate(self._agreement_names)}
        depth = self.ttt_steps
        metrics = {}
        for k in self.eval_top_ks:
            for d in range(1, depth + 1):
                if np.isfinite(value[index[f"acc@{k}/{d}"]]):
                    metrics[f"{prefix}acc{k}_depth{d}"] = float(value[index[f"acc@{k}/{d}"]])
        tau = index[f"tau_chain/{depth}"]
        metrics[f"{prefix}tau_chain"] = float(value[tau])  # NaN when undefined: the key is always there
        if not np.isfinite(value[tau]):
            logger.warning(
                "%stau_chain is undefined: no held-out row has a chain of %d assistant tokens (--ttt-steps) to score",
                prefix,
                depth,
            )
        for key, i in (("acc1_depth1", index["acc@1/1"]), ("tau_chain", tau)):
            if np.isfinite(low[i]) and np.isfinite(high[i]):
                metrics[f"{prefix}{key}_halfwidth"] = float(high[i] - low[i]) / 2
        metrics[f"{prefix}tf_positions"] = int(counts[:, index["acc@1/1"]].sum())
        return metrics

    def log(self, logs, start_time=None):
        if "loss" in logs:  # a training log: add the per-step numbers accumulated since the previous one
            logs.update(self._ttt_metrics("train"))
        super().log(logs, start_time)

    def evaluation_loop(self, *args, metric_key_prefix="eval", **kwargs):
        self._ttt_stats["eval"] = None
        self._agreement = []
        output = super().evaluation_loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        output.metrics.update(self._ttt_metrics("eval", prefix=f"{metric_key_prefix}_"))
        output.metrics.update(self._agreement_metrics(prefix=f"{metric_key_prefix}_"))
        return output


# ---------------------------------------------------------------------------------------------- building blocks


def build_drafter(
    target_config: PretrainedConfig, variant: str = "eagle3.1", draft_vocab_size: int | None = None, **overrides
) -> DrafterPreTrainedModel:
    """A fresh drafter for `target_config`: variant in eagle3, eagle3.1 (EAGLE), mtp, mtp-postnorm (MTP head)."""
    config = build_drafter_config(target_config, variant, draft_vocab_size, **overrides)
    return variant_classes(variant)[1](config)


@modeling_checks_are_input_errors()
def build_drafter_config(
    target_config: PretrainedConfig, variant: str = "eagle3.1", draft_vocab_size: int | None = None, **overrides
) -> PretrainedConfig:
    """The drafter config of `build_drafter`."""
    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}.")
    cls = variant_classes(variant)[0]
    return cls.from_target(target_config, variant=variant, draft_vocab_size=draft_vocab_size, **overrides)


def apply_lora(
    drafter: PreTrainedModel, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: list[str] | None = None
) -> "PeftModel":
    """
    Wraps a (trained) drafter with LoRA adapters (peft), e.g. to adapt it to a new chat template or system prompt
    without touching the base weights. Default targets: attention and MLP projections and `fc` / `eh_proj`.
    Train the result with `EagleTrainer` as usual; `trainer.save_model()` then writes the adapter only.
    """
    from peft import LoraConfig, get_peft_model  # on use: only LoRA training needs peft

    if target_modules is None:
        names = {name.rsplit(".", 1)[-1] for name, _ in drafter.named_modules()}
        target_modules = sorted(
            names & {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc", "eh_proj"}
        )
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, bias="none")
    return get_peft_model(drafter, config)


def load_lora(drafter: PreTrainedModel, adapter_dir: str, is_trainable: bool = False) -> "PeftModel":
    """Attaches a saved LoRA adapter to `drafter` (a PeftModel)."""
    from peft import PeftModel  # on use (see apply_lora)

    return PeftModel.from_pretrained(drafter, adapter_dir, is_trainable=is_trainable)


def merge_lora(peft_model: "PeftModel") -> PreTrainedModel:
    """Folds the adapter into the base weights and returns a plain drafter that saves and loads like any other."""
    merged = peft_model.merge_and_unload()
    unwrap_drafter(merged)  # type check
    return merged


def estimate_step_memory(
    target_config: PretrainedConfig,
    drafter_config: PretrainedConfig,
    batch_size: int,
    seq_len: int,
    ttt_steps: int,
    target_bytes: int = 2,
    drafter_bytes: int = 4,
    online: bool = True,
    loss_chunk_size: int = 0,
) -> dict[str, int]:
    """
    Rough per-step memory (bytes) of drafter training, by term. The drafter logits of every TTT step are kept for
    backward (ttt_steps x B x n x D, plus their softmax for the loss); teacher logits exist once over the draft
    vocabulary (B x n x D); the target's full-vocabulary logits are never formed (argmax in chunks of 1024
    positions). Online adds the target's weights and one forward's activations (no grad, freed layer by layer).
    With `loss_chunk_size` the softmaxes exist for one chunk at a time and only the logits are kept.
    """
    text = text_config(target_config)
    h, v, layers = text.hidden_size, text.vocab_size, text.num_hidden_layers
    d, hd = drafter_config.draft_vocab_size, drafter_config.hidden_size
    tokens = batch_size * seq_len
    drafter_params = sum(p.numel() for p in build_drafter_like(drafter_config).parameters() if p.requires_grad)
    taps = len(drafter_config.target_layer_ids)
    if loss_chunk_size:
        loss_terms = {
            "drafter logits kept for backward (all TTT steps, fp32)": ttt_steps * tokens * d * 4,
            "loss softmaxes of one chunk (fp32, recomputed in backward)": min(tokens, loss_chunk_size) * d * 4 * 3,
        }
    else:
        loss_terms = {
            "drafter logits kept for backward (all TTT steps, fp32, x2 for softmax)": ttt_steps * tokens * d * 4 * 2
        }
    terms = {
        "drafter weights + grads + Adam (fp32)": drafter_params * 16,
        **loss_terms,
        "drafter activations (per TTT step, ~12 H-wide tensors a layer)": ttt_steps
        * tokens
        * hd
        * 12
        * getattr(drafter_config, "num_hidden_layers", 1)
        * drafter_bytes,
        "teacher logits over the draft vocabulary (fp32)": tokens * d * 4,
        "target features (taps + final state)": tokens * (taps + 1) * h * target_bytes,
        "full-vocabulary argmax chunk (fp32)": min(tokens, 1024) * v * 4,
    }
    if online:
        target_params = layers * (4 * h * h + 3 * h * text.intermediate_size) + 2 * v * h
        terms["target weights"] = target_params * target_bytes
        terms["target forward activations (one layer at a time, no grad)"] = (
            tokens * (h * 4 + text.intermediate_size * 2) * target_bytes
        )
    terms["total"] = sum(terms.values())
    return terms


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


def build_drafter_like(drafter_config: PretrainedConfig) -> DrafterPreTrainedModel:
    """An empty-weight copy of a drafter (for parameter counts) without allocating memory."""
    with torch.device("meta"):
        return DRAFTER_CLASSES[drafter_config.model_type](drafter_config)


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


def _holding_output_locks(train):
    """One writer per output: `train`'s `output_dir` and its checkpoint folder (`training_args.output_dir`) are
    locked for the whole run, by the main process of a distributed run (its other processes are the same run)."""
    signature = inspect.signature(train)

    @functools.wraps(train)
    def locked(*args, **kwargs):
        call = signature.bind(*args, **kwargs)
        output_dir, training_args = call.arguments["output_dir"], call.arguments.get("training_args")
        folders = {
            os.path.abspath(output_dir),
            os.path.abspath(getattr(training_args, "output_dir", None) or output_dir),
        }
        with contextlib.ExitStack() as locks:
            if int(os.environ.get("RANK", 0)) == 0:
                for folder in sorted(folders):
                    locks.enter_context(output_lock(folder))
            return train(*args, **kwargs)

    return locked


@_holding_output_locks
def train_drafter(
    dataset: "datasets.Dataset",
    output_dir: str,
    target: PreTrainedModel | str | os.PathLike | None = None,
    feature_dir: str | None = None,
    variant: str = "eagle3.1",
    draft_vocab_size: int | None = None,
    ttt_steps: int = DEFAULT_TTT_STEPS,
    training_args: TrainingArguments | None = None,
    drafter: PreTrainedModel | str | os.PathLike | None = None,
    eval_dataset: "datasets.Dataset | None" = None,
    lora: dict | None = None,
    callbacks: list[TrainerCallback] | None = None,
    target_name_or_path: str | None = None,
    head_init: str = "target",
    overwrite: bool = False,
    target_dtype: torch.dtype = torch.float32,
    trust_remote_code: bool = False,
    drafter_overrides: dict | None = None,
    loss_chunk_size: int = 0,
    loss_tokens: str = "assistant",
    loss_objective: str = "soft_ce",
    max_minutes: float | None = None,
) -> EagleTrainer:
    """
    The `hf-eagle31 train` pipeline as a function. Online: pass `target`. Offline: pass `feature_dir` (features
    made by `precompute_features`; with `target` too, missing features are computed first and the target is
    released before training). `target` may be a name or path (`targets.load_target`, in `target_dtype`): it is
    loaded after the checks below, and not at all when the features in `feature_dir` are complete.
    `drafter`: continue from a trained drafter, or its checkpoint directory / Hub id (`load_drafter_checkpoint`, with
    `trust_remote_code`); otherwise a fresh one is built and its draft vocabulary chosen from `dataset`.
    `lora`: dict of `apply_lora` kwargs to train an adapter instead.
    `target_name_or_path`: recorded in the drafter config (model cards use it as `base_model`; default: the Hub id of
    a target given by name).
    `head_init`: "target" starts a fresh drafter's `lm_head` from the target's LM head rows of the draft vocabulary
    (`init_lm_head_from_target`); "random" keeps the usual initialisation.
    `overwrite`: replace a drafter already saved in `output_dir` (otherwise refused; see `check_training_outputs`).
    `drafter_overrides`: config fields of a fresh drafter (`build_drafter(..., **overrides)`), e.g.
    `{"num_hidden_layers": 2, "intermediate_size": 2048}`; refused with `drafter`, whose shape is its checkpoint's.
    `loss_chunk_size`: see `EagleTrainer` (checkpointed loss chunks: less memory, same gradients).
    `loss_tokens`: "assistant" (the rows' `loss_mask`) or "all": the loss covers every position (the target's
        distribution is the label everywhere, prompts included); a fresh drafter's draft vocabulary is still chosen
        from the assistant tokens.
    `loss_objective`: the per-position loss (`LOSS_OBJECTIVES`: "soft_ce", or the acceptance-rate objectives
        "lk_alpha" / "lk_hybrid").
    `max_minutes`: a wall-time budget for this call (`TrainingTimeBudget`): past it, the step that ends is saved as a
        checkpoint in `training_args.output_dir` and training stops; a run stopped short of `max_steps` writes no
        drafter to `output_dir` (`trainer.stopped_by_budget` is True) and resumes with `resume_from_checkpoint=
        "latest"`.
    Returns the trainer (its model trained; the drafter or adapter saved to `output_dir` unless the budget stopped
    it).
    """
    if target is None and feature_dir is None:
        raise InputError("pass the target (online training) or a feature directory (offline training).")
    if draft_vocab_size is not None and draft_vocab_size < 1:
        raise InputError(f"draft_vocab_size={draft_vocab_size}: pass a positive size (capped at the target's vocab).")
    if loss_tokens not in ("assistant", "all"):
        raise InputError(f"loss_tokens={loss_tokens!r}: use 'assistant' or 'all'.")
    if head_init not in ("target", "random"):
        raise InputError(f"head_init={head_init!r}: use 'target' or 'random'.")
    if drafter_overrides and drafter is not None:
        raise InputError(
            f"drafter_overrides={drafter_overrides} shape a fresh drafter, but a trained drafter was "
            "given: its checkpoint fixes its shape; drop one of them."
        )
    budget = TrainingTimeBudget(max_minutes) if max_minutes is not None else None  # checks the value first
    args = training_args or TrainingArguments(output_dir=output_dir, report_to="none")
    check_training_outputs(
        output_dir,
        args.output_dir,
        overwrite,
        args.resume_from_checkpoint,
        saves_checkpoints=args.save_strategy != "no" or budget is not None,  # a budget's stop is a checkpoint
    )
    check_has_loss_tokens(dataset)
    check_ttt_steps(ttt_steps, dataset)
    if isinstance(target, (str, os.PathLike)):
        if target_name_or_path is None:
            target_name_or_path = targets.target_hub_id(target)
        target = load_target_for_features(target, feature_dir, target_dtype)
    if isinstance(drafter, (str, os.PathLike)):
        drafter = load_drafter_checkpoint(drafter, trust_remote_code=trust_remote_code)
    text = target_text_config_for_features(target, feature_dir)
    fresh = drafter is None
    if drafter is None:
        d = min(draft_vocab_size if draft_vocab_size is not None else 32000, text.vocab_size)
        drafter = build_drafter(text, variant, draft_vocab_size=d, **(drafter_overrides or {}))
        if d < text.vocab_size:
            draft_vocab_from_dataset(dataset, text.vocab_size, d).apply(drafter)
    if target_name_or_path is not None:
        drafter.config.target_name_or_path = target_name_or_path
    if loss_tokens == "all":
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
    if fresh and head_init == "target":
        drafter.init_lm_head_from_target(head)
    model = apply_lora(drafter, **lora) if lora else drafter
    trainer = EagleTrainer(
        model=model,
        args=args,
        target=target,
        teacher_head=teacher_head,
        teacher_head_bias=teacher_bias,
        ttt_steps=ttt_steps,
        train_dataset=train_data,
        eval_dataset=eval_dataset,
        callbacks=[*(callbacks or []), *([budget] if budget else [])] or None,
        loss_chunk_size=loss_chunk_size,
        loss_objective=loss_objective,
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    if trainer.finished_before and has_final_weights(output_dir):
        return trainer  # a finished run re-run: its saved drafter stays as it is
    if trainer.stopped_by_budget:
        return trainer  # not finished: its last step is a checkpoint, the drafter is saved when a resume completes it
    save_final(trainer, output_dir, model_card=not lora)
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
