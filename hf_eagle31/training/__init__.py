# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Training drafters with the HF `Trainer` (train-time test), one module per concern: the loss (`loss`), the `Trainer`
(`trainer`), batches (`collator`), checkpoints, resume and the final save (`checkpoints`), the time budget
(`budget`), building and unwrapping the drafter (`drafter`), LoRA (`lora`), the per-step memory estimate (`memory`),
the draft vocabulary (`draft_vocab`), the options of a run (`arguments`) and the whole run (`pipeline`:
`train_drafter`). Importing this package imports transformers' `Trainer` (slow): inference code imports
`hf_eagle31.loading` instead.
"""

from ..utils.deprecation import moved_names
from .arguments import DataArguments, DrafterArguments
from .budget import TrainingTimeBudget
from .checkpoints import check_training_outputs, resolve_resume_checkpoint
from .collator import DrafterDataCollator
from .draft_vocab import DraftVocab, build_draft_vocab, count_token_frequencies, draft_vocab_from_dataset
from .drafter import build_drafter, build_drafter_config, unwrap_drafter
from .lora import apply_lora, load_lora, merge_lora
from .loss import DEFAULT_TTT_DECAY, DEFAULT_TTT_STEPS, loss_token_count, ttt_loss
from .memory import estimate_step_memory
from .pipeline import load_target_for_features, precompute_training_features, train_drafter
from .trainer import EagleTrainer


# 0.1 defined the inference loader here: now `hf_eagle31.loading` (which does not import the Trainer).
__getattr__ = moved_names(__name__, {"load_drafter_checkpoint": "hf_eagle31.loading"})

__all__ = [
    "EagleTrainer",
    "TrainingTimeBudget",
    "DrafterDataCollator",
    "ttt_loss",
    "loss_token_count",
    "DEFAULT_TTT_STEPS",
    "DEFAULT_TTT_DECAY",
    "build_drafter",
    "build_drafter_config",
    "apply_lora",
    "load_lora",
    "merge_lora",
    "estimate_step_memory",
    "train_drafter",
    "unwrap_drafter",
    "resolve_resume_checkpoint",
    "check_training_outputs",
    "load_target_for_features",
    "precompute_training_features",
    "DrafterArguments",
    "DataArguments",
    "DraftVocab",
    "build_draft_vocab",
    "count_token_frequencies",
    "draft_vocab_from_dataset",
]
