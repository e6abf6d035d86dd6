# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Drafter checkpoints between formats: hf-eagle31, EAGLE (SafeAILab / SpecForge), speculators and vLLM. Every reader
yields the format-neutral `DrafterCheckpoint` (config + state dict in our names), every writer takes one; round
trips are bit-exact.

Modules: `neutral` (the format-neutral checkpoint and what the formats share), one per format (`native`
= hf-eagle31, `eagle` = SafeAILab / SpecForge `midlayer`, `specforge` = the two meanings of its `norm_output`,
`speculators`, `vllm`), and `checkpoint`, the pipeline (detect -> read -> check -> settle embeddings -> write).
"""

from .checkpoint import (
    TargetSource,
    convert_checkpoint,
    detect_format,
    load_foreign_drafter,
    load_target_parts,
    read_checkpoint,
    settle_embeddings,
    write_checkpoint,
)
from .neutral import (
    EAGLE_CONSUMERS,
    EMBEDDING_MODES,
    FORMATS,
    NORM_OUTPUT_SEMANTICS,
    SWITCHES,
    DrafterCheckpoint,
    drafter_from_checkpoint,
)


__all__ = [
    "FORMATS",
    "EMBEDDING_MODES",
    "SWITCHES",
    "NORM_OUTPUT_SEMANTICS",
    "EAGLE_CONSUMERS",
    "DrafterCheckpoint",
    "detect_format",
    "read_checkpoint",
    "settle_embeddings",
    "write_checkpoint",
    "drafter_from_checkpoint",
    "convert_checkpoint",
    "load_target_parts",
    "load_foreign_drafter",
    "TargetSource",
]
