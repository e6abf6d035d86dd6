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
"""

import argparse
import dataclasses
import inspect
import json
import os
import re
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers import (
    AutoModel,
    HfArgumentParser,
    PretrainedConfig,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging

from . import targets
from .data import load_prepared, with_loss_on_every_token
from .draft_vocab import draft_vocab_from_dataset
from .features import (
    FeatureDataset,
    capture_target_features,
    chunked_argmax,
    draft_teacher_logits,
    output_head,
    precompute_features,
)
from .hub import save_drafter, write_model_card
from .modeling import DRAFTER_CLASSES, Eagle3Config, variant_classes
from .modeling import VARIANTS as VARIANT_REGISTRY
from .modeling.configuration_common import FOREIGN_FORMAT_KEYS, check_checkpoint_config
from .modeling.drafter_common import DrafterPreTrainedModel


if TYPE_CHECKING:  # annotations only
    import datasets
    from peft import PeftModel


logger = logging.get_logger(__name__)

DEFAULT_TTT_STEPS = 7  # EAGLE-3
DEFAULT_TTT_DECAY = 0.8
VARIANTS = tuple(VARIANT_REGISTRY)  # the names of modeling/configuration_common.py's registry


# ---------------------------------------------------------------------------------------------- loss


def ttt_loss(
    step_logits: list[torch.Tensor],
    teacher_logits: torch.Tensor,
    teacher_argmax: torch.Tensor,
    t2d: torch.Tensor,
    loss_mask: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    decay: float = DEFAULT_TTT_DECAY,
    chunk_size: int = 0,
    objective: str = "soft_ce",
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Train-time-test loss of one batch, *not* normalized (the caller divides by the token count it chooses).

    step_logits: list of (B, n, D) drafter logits, one per TTT step (`drafter.ttt_forward`).
    teacher_logits: (B, n, D) the target's logits at every position restricted to the draft vocabulary.
    teacher_argmax: (B, n) the target's argmax over its *full* vocabulary (negative = unknown, masked).
    t2d: (V,) bool, target ids inside the draft vocabulary. loss_mask / attention_mask: (B, n).
    chunk_size: > 0 computes the soft cross-entropy in chunks of that many positions under activation checkpointing:
        backward keeps only the step logits themselves (in their dtype) instead of two fp32 (M, D) tensors per step
        (log-softmax and teacher probabilities), and recomputes each chunk's softmaxes (same loss and gradients;
        0 = all at once).
    objective: the per-position loss, a key of `LOSS_OBJECTIVES` (default "soft_ce"; "lk_alpha" / "lk_hybrid": the
        acceptance-rate objectives, see there). `stats[0]` holds that loss's per-step sums.

    Returns `(weighted_sum, stats)`: `stats` is a (3, steps) tensor of per-step CE sums, correct counts (drafter
    argmax == teacher argmax) and valid-position counts.
    """
    if objective not in LOSS_OBJECTIVES:
        raise ValueError(f"unknown loss objective {objective!r}: use one of {', '.join(LOSS_OBJECTIVES)}.")
    per_position = LOSS_OBJECTIVES[objective]
    bsz, n = loss_mask.shape
    steps = len(step_logits)
    present = loss_mask.bool()
    if attention_mask is not None:
        present = present & attention_mask.bool()
    in_draft = (teacher_argmax >= 0) & t2d[teacher_argmax.clamp(min=0)]  # (B, n): target's pick is draftable
    # Zero, but part of the graph: a batch without a single valid position (no assistant token, or none the draft
    # vocabulary can express) still backpropagates (zero gradients) instead of failing; DDP ranks stay in step.
    total = (step_logits[0].flatten()[:1].float() * 0.0).sum()
    stats = torch.zeros(3, steps, device=loss_mask.device)
    for j, logits in enumerate(step_logits):
        k = n - 2 - j  # positions t = 0..k-1 have a token x_{t+2+j} to predict
        if k <= 0:
            continue
        valid = present[:, 2 + j : 2 + j + k] & in_draft[:, 1 + j : 1 + j + k]  # (B, k)
        if not valid.any():
            continue
        if chunk_size > 0 and logits.requires_grad:
            # Backward keeps views of the logits (no copies) and the positions; each chunk's fp32 softmaxes are
            # recomputed in backward.
            rows, cols = valid.nonzero(as_tuple=True)
            student_all, teacher_all = logits[:, :k], teacher_logits[:, 1 + j : 1 + j + k]
            ce = torch.cat([
                checkpoint(_loss_at, per_position, student_all, teacher_all, r, c, use_reentrant=False)
                for r, c in zip(rows.split(chunk_size), cols.split(chunk_size))
            ])
            with torch.no_grad():
                picks = logits[:, :k].argmax(-1)[valid], teacher_all.argmax(-1)[valid]  # no (M, D) copies
        else:
            student = logits[:, :k][valid]  # (M, D): only the positions that count
            teacher = teacher_logits[:, 1 + j : 1 + j + k][valid]  # (M, D)
            ce = per_position(student, teacher)
            picks = student.detach().argmax(-1), teacher.argmax(-1)
        total = total + (decay**j) * ce.sum()
        stats[0, j] = ce.detach().sum()
        stats[1, j] = (picks[0] == picks[1]).sum()
        stats[2, j] = valid.sum()
    return total, stats


def _soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(M,) cross-entropy of fp32 student logits against the softmax of the teacher's (soft targets)."""
    return F.cross_entropy(student.float(), teacher.float().softmax(-1), reduction="none")


def _loss_at(per_position, student, teacher, rows, cols):
    """`per_position` at the positions (rows, cols) of (B, k, D) student / teacher logits."""
    return per_position(student[rows, cols], teacher[rows, cols])


# ---- acceptance-rate objectives (issue 28, item 3) --------------------------------------------------------------
# The LK losses (arXiv 2602.23881) train the drafter on the acceptance rate itself instead of its KL proxy. Speculative
# sampling accepts a draft from q with probability alpha = sum_x min(p(x), q(x)) = 1 - TV(p, q) (p the target's,
# here over the draft vocabulary). "lk_alpha" minimizes -log(alpha) per position; "lk_hybrid" adds it to the soft
# cross-entropy (KL keeps a gradient on tokens where q has no mass yet; -log alpha pushes what the capacity-limited
# drafter gets right towards acceptance). Written from the objective's definition; the paper's exact weighting
# schedules are not reproduced.


def acceptance_rate(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(M,) alpha = sum_x min(p, q) of the softmaxes of teacher (p) and student (q) logits (M, D), fp32."""
    return torch.minimum(student.float().softmax(-1), teacher.float().softmax(-1)).sum(-1)


def _lk_alpha(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(M,) -log(alpha): the negative log acceptance rate of speculative sampling (0 when q == p)."""
    return -torch.log(acceptance_rate(student, teacher).clamp(min=1e-6))


def _lk_hybrid(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(M,) soft cross-entropy + -log(alpha)."""
    return _soft_cross_entropy(student, teacher) + _lk_alpha(student, teacher)


LOSS_OBJECTIVES = {"soft_ce": _soft_cross_entropy, "lk_alpha": _lk_alpha, "lk_hybrid": _lk_hybrid}
# ---- end of the acceptance-rate objectives ----------------------------------------------------------------------


def loss_token_count(loss_mask: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """N of the normalization: assistant positions step 0 predicts (`loss_mask` of x_{t+2}, t = 0..n-3)."""
    mask = loss_mask[:, 2:].bool()
    if attention_mask is not None:
        mask = mask & attention_mask[:, 2:].bool()
    return mask.sum()


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
            raise ValueError("a training row has no tokens: drop empty rows when preparing data (prepare-data does).")
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


def is_complete_checkpoint(path: str) -> bool:
    """True when the Trainer finished writing `path`: its trainer_state.json (written last) exists and parses."""
    try:
        with open(os.path.join(path, TRAINER_STATE), encoding="utf-8") as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return True


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
            raise ValueError(
                f"--resume_from_checkpoint {asked} is not a directory: pass a checkpoint-N directory, or 'latest' "
                "(the newest complete checkpoint in --output_dir)."
            )
        if is_complete_checkpoint(asked):
            return asked
        folder = os.path.dirname(os.path.abspath(asked))
    steps = {p: int(_CHECKPOINT.fullmatch(os.path.basename(p)).group(1)) for p in checkpoint_dirs(folder)}
    if asked is not None:  # an older checkpoint of the same run, never a newer one
        match = _CHECKPOINT.fullmatch(os.path.basename(asked))
        steps = {p: step for p, step in steps.items() if match and step < int(match.group(1))}
    complete = [p for p in steps if is_complete_checkpoint(p)]
    if not complete:
        what = f"{asked} is incomplete (no {TRAINER_STATE}) and there is no older" if asked else "there is no"
        raise ValueError(f"{what} complete checkpoint in {folder} to resume from: train without --resume_from_checkpoint.")
    chosen = complete[-1]
    skipped = [asked] if asked else [p for p in steps if steps[p] > steps[chosen]]
    if skipped:
        logger.warning("skipping incomplete checkpoint(s) %s (no %s: the save was interrupted); resuming from %s",
                       ", ".join(skipped), TRAINER_STATE, chosen)
    return chosen


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
    final = [name for name in FINAL_MODEL_FILES if os.path.isfile(os.path.join(out, name))]
    if final and not overwrite:
        raise ValueError(
            f"{out} already holds a trained drafter ({final[0]}): pass --overwrite to replace it, or choose another --out."
        )
    folder = output_dir or out
    old = [p for p in checkpoint_dirs(folder) if is_complete_checkpoint(p)]  # partial ones hold nothing to keep
    if old and saves_checkpoints:
        names = ", ".join(os.path.basename(p) for p in old[:3]) + (", ..." if len(old) > 3 else "")
        raise ValueError(
            f"{folder} holds checkpoints of an earlier run ({names}): continue it with --resume_from_checkpoint "
            "latest, or use another --output_dir (this run's checkpoints would overwrite or rotate them away)."
        )


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
    raise ValueError(f"{type(model).__name__} does not wrap an hf-eagle31 drafter: pass an Eagle3Drafter / MtpDrafter.")


def load_drafter_checkpoint(
    name_or_path: str | os.PathLike, trust_remote_code: bool = False, **kwargs
) -> PreTrainedModel | tuple[PreTrainedModel, dict]:
    """
    A drafter checkpoint (directory or Hub id). hf-eagle31 checkpoints (a `model_type` of the variant registry:
    `modeling.DRAFTER_CLASSES`) load with this package's classes, no remote code; any other checkpoint runs its own
    code only with `trust_remote_code=True` (as transformers). `kwargs` go to `from_pretrained` (dtype, ...; with
    `output_loading_info=True` the result is `(drafter, loading_info)`, as there).
    """
    try:
        config, _ = PretrainedConfig.get_config_dict(str(name_or_path))
    except OSError as error:
        raise ValueError(f"{name_or_path} is not a drafter checkpoint (no readable config.json): {error}") from None
    model_type = config.get("model_type")
    foreign_drafter = model_type not in DRAFTER_CLASSES and (
        any(k in config for k in FOREIGN_FORMAT_KEYS) or "draft_vocab_size" in config
    )
    if not config or (foreign_drafter and not (trust_remote_code and "auto_map" in config)):
        # no config.json, or an EAGLE / vLLM / speculators drafter (no code of its own to trust): convert it
        check_checkpoint_config(Eagle3Config, config, name_or_path)
    if model_type not in DRAFTER_CLASSES and not trust_remote_code:
        raise ValueError(
            f"{name_or_path} is a {model_type or 'config-less'} checkpoint, not an hf-eagle31 drafter: convert it "
            "(`hf-eagle31 convert SRC DST --to hf-eagle31`), or pass --trust-remote-code to run its own code."
        )
    if model_type in DRAFTER_CLASSES:  # (their from_pretrained already names the checkpoint on unreadable weights)
        return DRAFTER_CLASSES[model_type].from_pretrained(name_or_path, **kwargs)
    try:
        return AutoModel.from_pretrained(name_or_path, trust_remote_code=True, **kwargs)
    except Exception as error:  # safetensors' "incomplete metadata" and friends name no file: add the checkpoint
        if type(error).__name__ == "SafetensorError":
            raise ValueError(f"{name_or_path}: unreadable weights ({error}): the file is truncated or corrupt; "
                             "copy or save the checkpoint again.") from error
        raise


def _is_remote_code_drafter(model):
    """A drafter loaded with `trust_remote_code` is an instance of the checkpoint's copy of the classes, not ours."""
    return any(cls.__name__ == "DrafterPreTrainedModel" for cls in type(model).__mro__) and hasattr(model, "ttt_forward")


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
        **kwargs,
    ):
        drafter = unwrap_drafter(model)
        if target is None and teacher_head is None:
            raise ValueError(
                "EagleTrainer needs the frozen `target` (online training) or `teacher_head=` the target's LM head "
                "weight with a FeatureDataset (offline training)."
            )
        if ttt_steps < 1:
            raise ValueError(f"ttt_steps={ttt_steps}: the TTT unroll needs at least one step.")
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
            raise ValueError(f"unknown loss objective {loss_objective!r}: use one of {', '.join(LOSS_OBJECTIVES)}.")
        self.loss_objective = loss_objective
        self.target = target
        if target is not None:
            drafter.check_target(target.config)
            target.requires_grad_(False).eval().to(self.args.device)
            teacher_head, teacher_head_bias = output_head(target)
        self.teacher_head = teacher_head.to(self.args.device)
        self.teacher_head_bias = teacher_head_bias.to(self.args.device) if teacher_head_bias is not None else None
        self._ttt_stats = {"train": None, "eval": None}
        self._forward_returns_dict = _forward_takes_return_dict(drafter)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        """`Trainer.train`, resuming only from a complete checkpoint (`resolve_resume_checkpoint`: "latest" / True
        is the newest complete one in `output_dir`; a partial one falls back to the newest complete one before it)."""
        resume = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir)
        return super().train(resume, *args, **kwargs)

    def _save_checkpoint(self, model, trial):
        # trainer_state.json, written last, marks a complete checkpoint: remove a stale one before saving into an
        # existing folder (a resumed run passing the same step again), so that a killed save never looks complete.
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        if self.args.should_save and os.path.isfile(os.path.join(folder, TRAINER_STATE)):
            os.remove(os.path.join(folder, TRAINER_STATE))
        super()._save_checkpoint(model, trial)

    # The columns a row must keep (the drafter's forward signature is the inference chain step, not ours).
    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = [
                "input_ids", "loss_mask", "target_hidden_states", "target_final_hidden", "teacher_argmax",
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
                raise ValueError(
                    "offline training needs rows with precomputed features: pass a FeatureDataset as the dataset "
                    "(or pass `target=` for online training)."
                )
            features, final, argmax = inputs["target_hidden_states"], inputs["target_final_hidden"], inputs["teacher_argmax"]
        with torch.no_grad():
            teacher_logits = draft_teacher_logits(final, self.teacher_head, draft_ids, self.teacher_head_bias)
        return features, teacher_logits, argmax

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        drafter = unwrap_drafter(model)
        features, teacher_logits, argmax = self._teacher(inputs, drafter)
        step_logits = _ttt_step_logits(model, inputs["input_ids"], features, self.ttt_steps, self._forward_returns_dict)
        total, stats = ttt_loss(
            step_logits, teacher_logits, argmax, drafter.t2d, inputs["loss_mask"], inputs["attention_mask"],
            self.ttt_decay, self.loss_chunk_size, self.loss_objective,
        )
        mode = "train" if model.training else "eval"
        self._ttt_stats[mode] = stats if self._ttt_stats[mode] is None else self._ttt_stats[mode] + stats
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

    def log(self, logs, start_time=None):
        if "loss" in logs:  # a training log: add the per-step numbers accumulated since the previous one
            logs.update(self._ttt_metrics("train"))
        super().log(logs, start_time)

    def evaluation_loop(self, *args, metric_key_prefix="eval", **kwargs):
        self._ttt_stats["eval"] = None
        output = super().evaluation_loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        output.metrics.update(self._ttt_metrics("eval", prefix=f"{metric_key_prefix}_"))
        return output


# ---------------------------------------------------------------------------------------------- building blocks


def build_drafter(
    target_config: PretrainedConfig, variant: str = "eagle3.1", draft_vocab_size: int | None = None, **overrides
) -> DrafterPreTrainedModel:
    """A fresh drafter for `target_config`: variant in eagle3, eagle3.1 (EAGLE), mtp, mtp-postnorm (MTP head)."""
    config = build_drafter_config(target_config, variant, draft_vocab_size, **overrides)
    return variant_classes(variant)[1](config)


def build_drafter_config(
    target_config: PretrainedConfig, variant: str = "eagle3.1", draft_vocab_size: int | None = None, **overrides
) -> PretrainedConfig:
    """The drafter config of `build_drafter`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}.")
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
    text = target_config.get_text_config() if hasattr(target_config, "get_text_config") else target_config
    h, v, layers = text.hidden_size, text.vocab_size, text.num_hidden_layers
    d, hd = drafter_config.draft_vocab_size, drafter_config.hidden_size
    tokens = batch_size * seq_len
    drafter_params = sum(
        p.numel() for p in build_drafter_like(drafter_config).parameters() if p.requires_grad
    )
    taps = len(drafter_config.target_layer_ids)
    if loss_chunk_size:
        loss_terms = {
            "drafter logits kept for backward (all TTT steps, fp32)": ttt_steps * tokens * d * 4,
            "loss softmaxes of one chunk (fp32, recomputed in backward)": min(tokens, loss_chunk_size) * d * 4 * 3,
        }
    else:
        loss_terms = {
            "drafter logits kept for backward (all TTT steps, fp32, x2 for softmax)": ttt_steps * tokens * d * 4 * 2,
        }
    terms = {
        "drafter weights + grads + Adam (fp32)": drafter_params * 16,
        **loss_terms,
        "drafter activations (per TTT step, ~12 H-wide tensors a layer)":
            ttt_steps * tokens * hd * 12 * getattr(drafter_config, "num_hidden_layers", 1) * drafter_bytes,
        "teacher logits over the draft vocabulary (fp32)": tokens * d * 4,
        "target features (taps + final state)": tokens * (taps + 1) * h * target_bytes,
        "full-vocabulary argmax chunk (fp32)": min(tokens, 1024) * v * 4,
    }
    if online:
        target_params = layers * (4 * h * h + 3 * h * text.intermediate_size) + 2 * v * h
        terms["target weights"] = target_params * target_bytes
        terms["target forward activations (one layer at a time, no grad)"] = tokens * (h * 4 + text.intermediate_size * 2) * target_bytes
    terms["total"] = sum(terms.values())
    return terms


def check_has_loss_tokens(dataset: "datasets.Dataset") -> None:
    """Refuses data where no row has an assistant (loss) token the drafter could predict (position >= 2)."""
    if "loss_mask" not in getattr(dataset, "column_names", ()):
        return
    for mask in dataset["loss_mask"]:
        if any(mask[2:]):
            return
    raise ValueError(
        f"none of the {len(dataset)} training rows has an assistant (loss) token past position 2: nothing to learn; "
        "prepare the data from conversations with assistant replies (`hf-eagle31 prepare-data`, see its report)."
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


def _target_text_config(target: PreTrainedModel | None, feature_dir: str | None) -> PretrainedConfig:
    """The target's text config: the model's, or the one saved with the features when no target is loaded."""
    config = target.config if target is not None else FeatureDataset(feature_dir, verify="size").target_config()
    return config.get_text_config() if hasattr(config, "get_text_config") else config


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
        raise ValueError(
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
    Returns the trainer (its model trained; the drafter or adapter saved to `output_dir`).
    """
    if target is None and feature_dir is None:
        raise ValueError("pass the target (online training) or a feature directory (offline training).")
    if draft_vocab_size is not None and draft_vocab_size < 1:
        raise ValueError(f"draft_vocab_size={draft_vocab_size}: pass a positive size (capped at the target's vocab).")
    if loss_tokens not in ("assistant", "all"):
        raise ValueError(f"loss_tokens={loss_tokens!r}: use 'assistant' or 'all'.")
    if head_init not in ("target", "random"):
        raise ValueError(f"head_init={head_init!r}: use 'target' or 'random'.")
    if drafter_overrides and drafter is not None:
        raise ValueError(f"drafter_overrides={drafter_overrides} shape a fresh drafter, but a trained drafter was "
                         "given: its checkpoint fixes its shape; drop one of them.")
    args = training_args or TrainingArguments(output_dir=output_dir, report_to="none")
    check_training_outputs(output_dir, args.output_dir, overwrite, args.resume_from_checkpoint,
                           saves_checkpoints=args.save_strategy != "no")
    check_has_loss_tokens(dataset)
    if isinstance(target, (str, os.PathLike)):
        if target_name_or_path is None:
            target_name_or_path = targets.target_hub_id(target)
        target = load_target_for_features(target, feature_dir, target_dtype)
    if isinstance(drafter, (str, os.PathLike)):
        drafter = load_drafter_checkpoint(drafter, trust_remote_code=trust_remote_code)
    text = _target_text_config(target, feature_dir)
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
        model=model, args=args, target=target, teacher_head=teacher_head, teacher_head_bias=teacher_bias,
        ttt_steps=ttt_steps, train_dataset=train_data, eval_dataset=eval_dataset, callbacks=callbacks,
        loss_chunk_size=loss_chunk_size, loss_objective=loss_objective,
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model(output_dir)
    if not lora and trainer.args.should_save:
        write_model_card(trainer.model, output_dir)  # README.md next to the drafter (hub.py; adapters get peft's)
    return trainer


# ---------------------------------------------------------------------------------------------- CLI


@dataclasses.dataclass
class DrafterArguments:
    """`hf-eagle31 train` options for the drafter: what is trained, from what, and where it is saved."""

    _argument_group_name = "drafter"

    out: str | None = dataclasses.field(default=None, metadata={
        "metavar": "DIR", "help": "where the trained drafter (or LoRA adapter) is saved; needed to train (not with "
        "--features-only / --estimate-memory)"})
    target: str = dataclasses.field(default=targets.DEFAULT_TARGET, metadata={
        "help": "target model: Hub id, folder or .gguf; the default is the embedded SmolLM2-135M-Instruct"})
    target_dtype: str = dataclasses.field(default="float32", metadata={
        "choices": ["float32", "bfloat16", "float16"], "help": "dtype of the frozen target"})
    variant: str = dataclasses.field(default="eagle3.1", metadata={"choices": VARIANTS, "help": "drafter variant"})
    ttt_steps: int = dataclasses.field(default=DEFAULT_TTT_STEPS, metadata={"help": "train-time-test unroll length"})
    draft_vocab_size: int = dataclasses.field(default=32000, metadata={
        "help": "D, the drafter's vocabulary (capped at the target's vocab size)"})
    head_init: str = dataclasses.field(default="target", metadata={
        "choices": ["target", "random"],
        "help": "a fresh drafter's lm_head: the target's LM head rows of the draft vocabulary, or random"})
    num_layers: int = dataclasses.field(default=1, metadata={
        "help": "a fresh drafter's depth (config `num_hidden_layers`): the first layer reads token + hidden state, the "
        "others are standard pre-norm layers; 1 is the published EAGLE-3 layout (the only one --to eagle can export)"})
    intermediate_size: int | None = dataclasses.field(default=None, metadata={
        "help": "a fresh drafter's MLP width (default: the target's)"})
    loss_chunk_size: int = dataclasses.field(default=0, metadata={
        "help": "> 0: compute the loss in checkpointed chunks of this many positions (backward keeps each TTT "
        "step's logits only, not their softmaxes: less memory at large TTT x draft vocabulary, same gradients)"})
    loss_objective: str = dataclasses.field(default="soft_ce", metadata={
        "choices": ["soft_ce", "lk_alpha", "lk_hybrid"],
        "help": "per-position loss: soft cross-entropy against the target (default), or the acceptance-rate "
        "objectives of the LK losses: -log alpha with alpha = sum min(p, q) (lk_alpha), or soft CE + -log alpha"})
    init_from: str | None = dataclasses.field(default=None, metadata={
        "metavar": "DRAFTER", "help": "start from a trained drafter directory"})
    trust_remote_code: bool = dataclasses.field(default=False, metadata={
        "help": "let --init-from run a foreign checkpoint's own code (hf-eagle31 drafters never need it)"})
    overwrite: bool = dataclasses.field(default=False, metadata={"help": "replace a drafter already saved in --out"})
    lora_r: int = dataclasses.field(default=0, metadata={
        "help": "> 0: train a LoRA adapter of this rank on --init-from"})
    lora_alpha: int = dataclasses.field(default=16, metadata={"help": "LoRA alpha"})
    merge_lora: bool = dataclasses.field(default=False, metadata={
        "help": "also save the merged drafter to OUT/merged"})
    estimate_memory: bool = dataclasses.field(default=False, metadata={
        "help": "print the per-step memory estimate and exit"})

    def __post_init__(self):
        positive = [("--ttt-steps", self.ttt_steps), ("--draft-vocab-size", self.draft_vocab_size),
                    ("--num-layers", self.num_layers), ("--intermediate-size", self.intermediate_size)]
        for flag, value in positive:
            if value is not None and value < 1:
                raise ValueError(f"{flag} {value}: must be >= 1.")
        if self.loss_chunk_size < 0:
            raise ValueError(f"--loss-chunk-size {self.loss_chunk_size}: must be >= 0 (0 = the whole loss at once).")
        if self.lora_r > 0 and not self.init_from:
            raise ValueError("--lora-r trains an adapter on a trained drafter: pass --init-from DRAFTER_DIR.")
        if self.init_from and (self.num_layers != 1 or self.intermediate_size is not None):
            raise ValueError("--num-layers / --intermediate-size shape a fresh drafter, but --init-from keeps its "
                             "checkpoint's shape: drop them or drop --init-from.")

    def drafter_overrides(self) -> dict:
        """The config fields these options set on a fresh drafter (`build_drafter(..., **overrides)`)."""
        overrides = {"num_hidden_layers": self.num_layers}
        if self.intermediate_size is not None:
            overrides["intermediate_size"] = self.intermediate_size
        return overrides


@dataclasses.dataclass
class DataArguments:
    """`hf-eagle31 train` options for the training data and the target features."""

    _argument_group_name = "data"

    data: list[str] = dataclasses.field(metadata={
        "metavar": "DIR",
        "help": "dataset directory written by `hf-eagle31 prepare-data` (several: rows concatenated)"})
    eval_fraction: float = dataclasses.field(default=0.0, metadata={
        "help": "hold out this share of rows for evaluation"})
    offline_features: str | None = dataclasses.field(default=None, metadata={
        "metavar": "DIR", "help": "precompute target features into DIR (resumable), free the target, train from them"})
    features_only: bool = dataclasses.field(default=False, metadata={
        "help": "with --offline-features: compute the features (one process) and exit"})
    loss_tokens: str = dataclasses.field(default="assistant", metadata={
        "choices": ["assistant", "all"],
        "help": "positions the loss covers: the assistant tokens (the rows' loss_mask) or all of them (prompts too: "
        "the target's own distribution is the label everywhere); held-out rows are scored on assistant tokens"})

    def __post_init__(self):
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"--eval-fraction {self.eval_fraction}: pass a share in [0, 1), e.g. 0.05.")
        if self.features_only and self.offline_features is None:
            raise ValueError("--features-only needs --offline-features DIR.")


class _TrainerOptions(TrainingArguments):
    # Only for `--help`: shows every TrainingArguments option under its own heading, after ours. Parsing builds the
    # plain `TrainingArguments` (`parse_cli_arguments`), which is what checkpoints save.
    _argument_group_name = "Trainer (every transformers.TrainingArguments option)"


def build_cli_parser(prog: str | None = None, description: str | None = None) -> HfArgumentParser:
    """`hf-eagle31 train`'s parser: transformers' `HfArgumentParser` over `DrafterArguments`, `DataArguments` and
    `TrainingArguments` (--learning_rate, --per_device_train_batch_size, --report_to, ...)."""
    parser = HfArgumentParser(
        (DrafterArguments, DataArguments, _TrainerOptions), prog=prog, description=description,
        usage="%(prog)s --data DIR [DIR ...] [--out DIR] [drafter / data options] [TrainingArguments options]",
    )
    parser.set_defaults(output_dir=None, report_to="none")  # output_dir: --out; no logging integration unless asked
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
    text = _target_text_config(target, data_args.offline_features)
    drafter_config = drafter.config if drafter is not None else build_drafter_config(
        text, drafter_args.variant, min(drafter_args.draft_vocab_size, text.vocab_size),
        **drafter_args.drafter_overrides(),
    )
    terms = estimate_step_memory(
        text, drafter_config, training_args.per_device_train_batch_size, max(len(r) for r in dataset["input_ids"]),
        drafter_args.ttt_steps, target_bytes=torch.finfo(target_dtype).bits // 8,
        online=data_args.offline_features is None, loss_chunk_size=drafter_args.loss_chunk_size,
    )
    for name, value in terms.items():
        print(f"{value / 2**30:9.3f} GiB  {name}")


def run_cli(args: argparse.Namespace) -> int:
    """`hf-eagle31 train`: `train_drafter` on the prepared data, or only the offline features (`--features-only`),
    or only the memory estimate (`--estimate-memory`)."""
    drafter_args, data_args, training_args = parse_cli_arguments(args)
    if drafter_args.out is None and not (data_args.features_only or drafter_args.estimate_memory):
        raise ValueError("--out DIR is needed to train: where the drafter (or LoRA adapter) is saved "
                         "(only --features-only and --estimate-memory run without it).")
    dataset = load_prepared(data_args.data)
    eval_dataset = None
    if data_args.eval_fraction > 0:
        split = dataset.train_test_split(test_size=data_args.eval_fraction, seed=0)
        dataset, eval_dataset = split["train"], split["test"]
    target_dtype = getattr(torch, drafter_args.target_dtype)
    if data_args.features_only:
        target = load_target_for_features(drafter_args.target, data_args.offline_features, target_dtype)
        if target is not None:
            text = target.config.get_text_config()
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
    lora = {"r": drafter_args.lora_r, "alpha": drafter_args.lora_alpha} if drafter_args.lora_r > 0 else None
    trainer = train_drafter(
        dataset, drafter_args.out, target=drafter_args.target, target_dtype=target_dtype,
        feature_dir=data_args.offline_features, variant=drafter_args.variant,
        draft_vocab_size=drafter_args.draft_vocab_size, ttt_steps=drafter_args.ttt_steps, training_args=training_args,
        drafter=drafter_args.init_from, trust_remote_code=drafter_args.trust_remote_code, eval_dataset=eval_dataset,
        lora=lora, head_init=drafter_args.head_init, overwrite=drafter_args.overwrite,
        drafter_overrides=None if drafter_args.init_from else drafter_args.drafter_overrides(),
        loss_chunk_size=drafter_args.loss_chunk_size, loss_tokens=data_args.loss_tokens,
        loss_objective=drafter_args.loss_objective,
    )
    if lora and drafter_args.merge_lora and trainer.args.should_save:
        save_drafter(merge_lora(trainer.model), os.path.join(drafter_args.out, "merged"))
    if trainer.args.should_save:
        print(f"saved to {drafter_args.out}")
    return 0


__all__ = [
    "EagleTrainer",
    "DrafterDataCollator",
    "ttt_loss",
    "loss_token_count",
    "build_drafter",
    "build_drafter_config",
    "apply_lora",
    "load_lora",
    "merge_lora",
    "estimate_step_memory",
    "train_drafter",
    "unwrap_drafter",
    "load_drafter_checkpoint",
    "resolve_resume_checkpoint",
    "check_training_outputs",
    "load_target_for_features",
    "precompute_training_features",
    "DrafterArguments",
    "DataArguments",
]
