# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""A wall-time budget for one training call (`--max-minutes`): a `TrainerCallback` that saves the step that ends past
the budget as a checkpoint and stops there, unfinished, so that `--resume_from_checkpoint latest` continues the run."""

import time

import torch
from transformers import TrainerCallback

from ..errors import InputError


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
