# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Training drafters with the HF `Trainer` (train-time test): the loss (`loss`), the trainer, data collator, LoRA and
checkpoint handling (`trainer`), the draft vocabulary (`draft_vocab`) and the options of a run (`arguments`).
Importing this package imports transformers' `Trainer` (slow): inference code imports `hf_eagle31.loading` instead.
"""

from ..utils.deprecation import moved_names
from .arguments import DataArguments, DrafterArguments
from .draft_vocab import DraftVocab, build_draft_vocab, count_token_frequencies, draft_vocab_from_dataset
from .loss import DEFAULT_TTT_DECAY, loss_token_count, ttt_loss
from .trainer import (
    DEFAULT_TTT_STEPS,
    DrafterDataCollator,
    EagleTrainer,
    TrainingTimeBudget,
    apply_lora,
    build_drafter,
    build_drafter_config,
    check_training_outputs,
    estimate_step_memory,
    load_lora,
    load_target_for_features,
    merge_lora,
    precompute_training_features,
    resolve_resume_checkpoint,
    train_drafter,
    unwrap_drafter,
)


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
