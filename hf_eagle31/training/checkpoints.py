# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
A run's files: its `checkpoint-<step>` folders and its final drafter. A checkpoint is complete iff its
trainer_state.json (the Trainer writes it last) holds the step counts; resume picks the newest complete one; a run
never writes over another run's checkpoints or a saved drafter unless asked; the final drafter is moved into place
with its weights last (`save_final`), so that a drafter is in a folder iff its weights are.
"""

import json
import os
import re
import shutil
import signal

import torch
from transformers import Trainer
from transformers.utils import logging

from ..errors import InputError
from ..hub import write_model_card
from ..utils.io import write_errors_name


logger = logging.get_logger(__name__)

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


def checkpoint_state(path: str) -> dict | None:
    """The checkpoint's trainer_state.json, or None when it is missing, unreadable or lacks the step counts."""
    state = _read_state(path)
    if state is None or not all(isinstance(state.get(k), int) for k in ("global_step", "max_steps")):
        return None
    return state


def is_complete_checkpoint(path: str) -> bool:
    """True when the Trainer finished writing `path`: its trainer_state.json (written last) exists, parses and holds
    the step counts (a damaged one counts as partial: resume skips it)."""
    return checkpoint_state(path) is not None


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


def fault_point(name: str) -> None:
    """Fault-injection hook of the test suite: `HF_EAGLE31_KILL_AT=name` SIGKILLs this process here (the slow tier
    checks what a run killed at each save point leaves behind). A no-op unless set."""
    if os.environ.get("HF_EAGLE31_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def save_final(trainer: Trainer, output_dir: str, model_card: bool) -> None:
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
        fault_point("final")
        names = sorted(os.listdir(partial), key=lambda n: n in FINAL_WEIGHTS)  # weights last
        for name in names:
            os.replace(os.path.join(partial, name), os.path.join(output_dir, name))
        os.rmdir(partial)
