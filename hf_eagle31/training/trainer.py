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

The rest of a run lives beside this module: `collator` (batches), `checkpoints` (complete checkpoints, resume, what
a run may overwrite, the final save), `budget` (`--max-minutes`), `drafter` (build / unwrap the drafter), `lora`,
`memory` (the per-step estimate) and `pipeline` (`train_drafter`, the `hf-eagle31 train` pipeline as a function).
"""

import inspect
import os
import pickle
import re

import numpy as np
import torch
from transformers import PreTrainedModel, Trainer, TrainerState, TrainingArguments
from transformers.trainer_utils import TrainOutput
from transformers.utils import logging

from ..agreement import chain_ranks, point_and_interval, position_metrics, target_to_draft_ids
from ..errors import InputError, one_line
from ..features import capture_target_features, chunked_argmax, draft_teacher_logits, output_head
from ..utils.deprecation import moved_names
from ..utils.io import read_errors_name, write_errors_name
from .budget import TrainingTimeBudget
from .checkpoints import (
    TRAINER_STATE,
    check_finite,
    checkpoint_dirs,
    checkpoint_state,
    fault_point,
    is_complete_checkpoint,
    resolve_resume_checkpoint,
)
from .collator import DrafterDataCollator
from .drafter import unwrap_drafter
from .loss import DEFAULT_TTT_DECAY, DEFAULT_TTT_STEPS, LOSS_OBJECTIVES, loss_token_count, ttt_loss


logger = logging.get_logger(__name__)


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
        state = checkpoint_state(resume) if resume else None
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

    # Five private `Trainer` methods are overridden (checked on transformers 5.23-5.25); each comment says what no
    # public hook (a `TrainerCallback`, `compute_loss`, `training_step`, `save_model`, a `TrainingArguments` field)
    # can do in its place.

    # Private override 1/5: a truncated or corrupt optimizer.pt / scheduler.pt becomes one line naming the fix. The
    # Trainer loads them inside its loop (after `on_train_begin`), so no callback runs around the load, and catching
    # these exception types around the whole of `train` would also rename real errors of the training steps.
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

    # Private override 2/5: a truncated model.safetensors in a resumed checkpoint is a *read* failure of that
    # checkpoint, named with the fix (safetensors' own error names no file, and was taken for a write failure). The
    # Trainer loads the weights inside `train`, where no callback runs around the load.
    def _load_from_checkpoint(self, resume_from_checkpoint, *args, **kwargs):
        fix = "resume from another checkpoint-N (--resume_from_checkpoint DIR/checkpoint-N)"
        with read_errors_name(resume_from_checkpoint, "the checkpoint's weights", fix):
            return super()._load_from_checkpoint(resume_from_checkpoint, *args, **kwargs)

    # Private override 3/5: what must happen *before* a checkpoint is written and around all of its files. Callbacks
    # only hear of a save afterwards (`on_save`), and the decision to save is not final at `on_step_end` (with
    # `save_strategy="best"` the Trainer sets it after evaluating); `save_model` writes the weights only, not the
    # optimizer, RNG and trainer state this must also cover.
    def _save_checkpoint(self, model, trial):
        # trainer_state.json, written last, marks a complete checkpoint: remove a stale one before saving into an
        # existing folder (a resumed run passing the same step again), so that a killed save never looks complete.
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        check_finite(model, f"at step {self.state.global_step}")  # never saved: the last finite checkpoint stays
        if self.args.should_save and os.path.isfile(os.path.join(folder, TRAINER_STATE)):
            os.remove(os.path.join(folder, TRAINER_STATE))
        with write_errors_name(folder):
            super()._save_checkpoint(model, trial)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if _internal_call:  # the Trainer's own save of a checkpoint's weights (the final save calls it plainly)
            fault_point("checkpoint")  # the weights are saved, trainer_state.json is not: a partial checkpoint

    # Private override 4/5: the columns a row keeps. The Trainer keeps the parameters of `model.forward`, which is
    # the drafter's inference step (no `loss_mask` or offline features); the public alternatives are the caller's
    # `TrainingArguments` (`remove_unused_columns=False`, `label_names`), which the trainer must not rewrite.
    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = [
                "input_ids",
                "loss_mask",
                "target_hidden_states",
                "target_final_hidden",
                "teacher_argmax",
            ]

    # Private override 5/5: the token count `compute_loss` divides by (`num_items_in_batch`): the positions step 0
    # can predict in every micro-batch of the optimizer step, on every process. The Trainer counts `labels != -100`
    # (shifted or not depending on the release, and only for models that accept loss kwargs); the drafter has no
    # labels, and there is no public hook for the count.
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


# Until the split by concern, this module also held the checkpoint helpers, the time budget's check, LoRA, the memory
# estimate and `train_drafter`; each now lives in its own module (see the module docstring) and the old path warns
# once per access. The names this module still imports for its own use (`DrafterDataCollator`, `TrainingTimeBudget`,
# `unwrap_drafter`, `resolve_resume_checkpoint`, ...) stay plain attributes.
__getattr__ = moved_names(
    __name__,
    {
        **dict.fromkeys(
            [
                "FINAL_MODEL_FILES",
                "FINAL_WEIGHTS",
                "FINAL_PARTIAL",
                "has_final_weights",
                "check_training_outputs",
                "save_final",
            ],
            "hf_eagle31.training.checkpoints",
        ),
        "check_max_minutes": "hf_eagle31.training.budget",
        **dict.fromkeys(["build_drafter", "build_drafter_config"], "hf_eagle31.training.drafter"),
        **dict.fromkeys(["apply_lora", "load_lora", "merge_lora"], "hf_eagle31.training.lora"),
        **dict.fromkeys(["estimate_step_memory", "build_drafter_like"], "hf_eagle31.training.memory"),
        **dict.fromkeys(
            [
                "train_drafter",
                "check_has_loss_tokens",
                "check_ttt_steps",
                "target_text_config_for_features",
                "load_target_for_features",
                "precompute_training_features",
            ],
            "hf_eagle31.training.pipeline",
        ),
    },
)
