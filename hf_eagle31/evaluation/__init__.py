# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Measuring drafters: acceptance and speed on prompt suites (`evaluate`), plain vs prompt lookup vs drafter
(`bench`; at several batch sizes: `batch_bench`), the attention-drift diagnostic (`drift`), and what they share:
timing `generate` (`timing`), drafting policies (`policies`), prompts (`prompts`), machine-noise calibration
(`calibration`) and tables (`report`).
"""

from ..modeling import SpeculationStats, tau_from_forwards  # noqa: F401  (the one definition of tau and acceptance)
from ..utils.deprecation import moved_names
from .evaluate import check_context, evaluate, pool_speculation_stats
from .policies import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_COPY_TOKENS, DRAFTING_POLICIES, drafting_policy
from .prompts import read_chat_template, read_prompt_file, render_prompt, suite_prompts
from .report import format_table
from .timing import ForwardHookTimer, GenerationRun, TargetForwardTimer, timed_generate


# 0.1 defined the inference loaders here (`hf_eagle31.evaluation.load_drafter`): now `hf_eagle31.loading`.
__getattr__ = moved_names(
    __name__, {name: "hf_eagle31.loading" for name in ("load_drafter", "load_drafters", "native_bf16")}
)

__all__ = [
    "evaluate",
    "check_context",
    "pool_speculation_stats",
    "DRAFTING_POLICIES",
    "DEFAULT_CONFIDENCE_THRESHOLD",
    "DEFAULT_COPY_TOKENS",
    "drafting_policy",
    "read_prompt_file",
    "read_chat_template",
    "suite_prompts",
    "render_prompt",
    "format_table",
    "ForwardHookTimer",
    "TargetForwardTimer",
    "GenerationRun",
    "timed_generate",
]
