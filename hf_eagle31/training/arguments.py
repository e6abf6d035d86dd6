# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""The options of a training run beside transformers' `TrainingArguments`: what drafter is trained, from what, and on
which data. `hf-eagle31 train` parses all three with `HfArgumentParser` (commands/train.py) and Python callers build
them: `train_drafter(dataset, DrafterArguments(...), DataArguments(...), TrainingArguments(...))`. Each dataclass
checks its own values (`InputError`, one line): a bound a command-line value can break names the flag; a choice,
which argparse checks first on the command line, names the field as Python spells it."""

import dataclasses

import torch

from ..errors import InputError
from ..modeling import VARIANTS
from ..targets import DEFAULT_TARGET
from .budget import check_max_minutes
from .loss import DEFAULT_TTT_STEPS, LOSS_OBJECTIVES


@dataclasses.dataclass
class DrafterArguments:
    """`hf-eagle31 train` options for the drafter: what is trained, from what, and where it is saved. From Python,
    `target=None` trains without a target (offline, from complete `DataArguments.offline_features`), and
    `train_drafter(..., target=model, drafter=model)` takes loaded models in place of `target` / `init_from`."""

    _argument_group_name = "drafter"

    out: str | None = dataclasses.field(
        default=None,
        metadata={
            "metavar": "DIR",
            "help": "where the trained drafter (or LoRA adapter) is saved; needed to train (not with "
            "--features-only / --estimate-memory)",
        },
    )
    target: str | None = dataclasses.field(
        default=DEFAULT_TARGET,
        metadata={"help": "target model: Hub id, folder or .gguf; the default is the embedded SmolLM2-135M-Instruct"},
    )
    target_name_or_path: str | None = dataclasses.field(
        default=None,
        metadata={
            "metavar": "ID",
            "help": "the target's name recorded in the drafter config (model cards' base_model); default: the Hub id "
            "of --target",
        },
    )
    target_dtype: str = dataclasses.field(
        default="float32",
        metadata={"choices": ["float32", "bfloat16", "float16"], "help": "dtype of the frozen target"},
    )
    variant: str = dataclasses.field(
        default="eagle3.1", metadata={"choices": list(VARIANTS), "help": "drafter variant"}
    )
    ttt_steps: int = dataclasses.field(default=DEFAULT_TTT_STEPS, metadata={"help": "train-time-test unroll length"})
    draft_vocab_size: int = dataclasses.field(
        default=32000, metadata={"help": "D, the drafter's vocabulary (capped at the target's vocab size)"}
    )
    head_init: str = dataclasses.field(
        default="target",
        metadata={
            "choices": ["target", "random"],
            "help": "a fresh drafter's lm_head: the target's LM head rows of the draft vocabulary, or random",
        },
    )
    num_layers: int = dataclasses.field(
        default=1,
        metadata={
            "help": "a fresh drafter's depth (config `num_hidden_layers`): the first layer reads token + hidden "
            "state, the others are standard pre-norm layers; 1 is the published EAGLE-3 layout (the only one --to "
            "eagle can export)"
        },
    )
    intermediate_size: int | None = dataclasses.field(
        default=None, metadata={"help": "a fresh drafter's MLP width (default: the target's)"}
    )
    loss_chunk_size: int = dataclasses.field(
        default=0,
        metadata={
            "help": "> 0: compute the loss in checkpointed chunks of this many positions (backward keeps each TTT "
            "step's logits only, not their softmaxes: less memory at large TTT x draft vocabulary, same gradients)"
        },
    )
    loss_objective: str = dataclasses.field(
        default="soft_ce",
        metadata={
            "choices": ["soft_ce", "lk_alpha", "lk_hybrid"],
            "help": "per-position loss: soft cross-entropy against the target (default), or the acceptance-rate "
            "objectives of the LK losses: -log alpha with alpha = sum min(p, q) (lk_alpha), or soft CE + -log alpha",
        },
    )
    init_from: str | None = dataclasses.field(
        default=None, metadata={"metavar": "DRAFTER", "help": "start from a trained drafter directory"}
    )
    trust_remote_code: bool = dataclasses.field(
        default=False,
        metadata={"help": "let --init-from run a foreign checkpoint's own code (hf-eagle31 drafters never need it)"},
    )
    overwrite: bool = dataclasses.field(default=False, metadata={"help": "replace a drafter already saved in --out"})
    lora_r: int = dataclasses.field(
        default=0, metadata={"help": "> 0: train a LoRA adapter of this rank on --init-from"}
    )
    lora_alpha: int = dataclasses.field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = dataclasses.field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] | None = dataclasses.field(
        default=None,
        metadata={
            "metavar": "NAME",
            "help": "module names LoRA adapts (default: the attention and MLP projections and fc / eh_proj)",
        },
    )
    merge_lora: bool = dataclasses.field(default=False, metadata={"help": "also save the merged drafter to OUT/merged"})
    max_minutes: float | None = dataclasses.field(
        default=None,
        metadata={
            "metavar": "M",
            "help": "wall-time budget of this call in minutes (from the first step; loading is not counted): past it, "
            "the step that ends is saved as a checkpoint and training stops, unfinished (no drafter in --out); "
            "continue with the same command plus --resume_from_checkpoint latest (--max_steps is the run's total)",
        },
    )
    estimate_memory: bool = dataclasses.field(
        default=False, metadata={"help": "print the per-step memory estimate and exit"}
    )

    def __post_init__(self):
        positive = [
            ("--ttt-steps", self.ttt_steps),
            ("--draft-vocab-size", self.draft_vocab_size),
            ("--num-layers", self.num_layers),
            ("--intermediate-size", self.intermediate_size),
        ]
        for flag, value in positive:
            if value is not None and value < 1:
                raise InputError(f"{flag} {value}: must be >= 1.")
        if self.loss_chunk_size < 0:
            raise InputError(f"--loss-chunk-size {self.loss_chunk_size}: must be >= 0 (0 = the whole loss at once).")
        if self.max_minutes is not None:
            check_max_minutes(self.max_minutes)
        if not 0 <= self.lora_dropout < 1:
            raise InputError(f"--lora-dropout {self.lora_dropout}: pass a probability in [0, 1).")
        # choices: argparse refuses a bad one on the command line, so these lines only reach Python callers
        if self.variant not in VARIANTS:
            raise InputError(f"variant={self.variant!r}: use one of {', '.join(VARIANTS)}.")
        if self.head_init not in ("target", "random"):
            raise InputError(f"head_init={self.head_init!r}: use 'target' or 'random'.")
        if self.loss_objective not in LOSS_OBJECTIVES:
            raise InputError(f"loss_objective={self.loss_objective!r}: use one of {', '.join(LOSS_OBJECTIVES)}.")
        dtype = getattr(torch, str(self.target_dtype), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InputError(f"target_dtype={self.target_dtype!r}: name a floating torch dtype, e.g. 'bfloat16'.")
        if self.merge_lora and self.lora_r <= 0:
            raise InputError("--merge-lora merges a LoRA adapter: pass --lora-r R (and --init-from) to train one.")
        if self.lora_r > 0 and not self.init_from:
            raise InputError("--lora-r trains an adapter on a trained drafter: pass --init-from DRAFTER_DIR.")
        if self.init_from and (self.num_layers != 1 or self.intermediate_size is not None):
            raise InputError(
                "--num-layers / --intermediate-size shape a fresh drafter, but --init-from keeps its "
                "checkpoint's shape: drop them or drop --init-from."
            )

    def torch_target_dtype(self) -> torch.dtype:
        """`target_dtype` as a `torch.dtype`."""
        return getattr(torch, self.target_dtype)

    def drafter_overrides(self) -> dict:
        """The config fields these options set on a fresh drafter (`build_drafter(..., **overrides)`)."""
        overrides = {"num_hidden_layers": self.num_layers}
        if self.intermediate_size is not None:
            overrides["intermediate_size"] = self.intermediate_size
        return overrides


@dataclasses.dataclass
class DataArguments:
    """`hf-eagle31 train` options for the training data and the target features. `data` is what the command loads
    (`train_drafter` takes the loaded dataset itself, so Python callers leave it out)."""

    _argument_group_name = "data"

    data: list[str] | None = dataclasses.field(
        default=None,
        metadata={
            "required": True,  # on the command line (argparse); Python callers pass the dataset to train_drafter
            "metavar": "DIR",
            "help": "dataset directory written by `hf-eagle31 prepare-data` (several: rows concatenated)",
        },
    )
    eval_fraction: float = dataclasses.field(
        default=0.0, metadata={"help": "hold out this share of rows for evaluation"}
    )
    offline_features: str | None = dataclasses.field(
        default=None,
        metadata={
            "metavar": "DIR",
            "help": "precompute target features into DIR (resumable), free the target, train from them",
        },
    )
    features_only: bool = dataclasses.field(
        default=False, metadata={"help": "with --offline-features: compute the features (one process) and exit"}
    )
    loss_tokens: str = dataclasses.field(
        default="assistant",
        metadata={
            "choices": ["assistant", "all"],
            "help": "positions the loss covers: the assistant tokens (the rows' loss_mask) or all of them "
            "(prompts too: "
            "the target's own distribution is the label everywhere); held-out rows are scored on assistant tokens",
        },
    )

    def __post_init__(self):
        if not 0 <= self.eval_fraction < 1:
            raise InputError(f"--eval-fraction {self.eval_fraction}: pass a share in [0, 1), e.g. 0.05.")
        if self.features_only and self.offline_features is None:
            raise InputError("--features-only needs --offline-features DIR.")
        if self.loss_tokens not in ("assistant", "all"):  # a choice: see the module docstring
            raise InputError(f"loss_tokens={self.loss_tokens!r}: use 'assistant' or 'all'.")
