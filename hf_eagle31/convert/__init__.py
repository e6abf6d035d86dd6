# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Drafter checkpoints between formats: hf-eagle31, EAGLE (SafeAILab / SpecForge), speculators and vLLM. Every reader
yields the format-neutral `DrafterCheckpoint` (config + state dict in our names), every writer takes one; round
trips are bit-exact. See `checkpoint` for the pipeline (read -> check -> settle embeddings -> write).
"""

from .checkpoint import (
    EMBEDDING_MODES,
    FORMATS,
    SWITCHES,
    DrafterCheckpoint,
    TargetSource,
    convert_checkpoint,
    detect_format,
    drafter_from_checkpoint,
    load_target_parts,
    read_checkpoint,
    settle_embeddings,
    write_checkpoint,
)


__all__ = [
    "FORMATS",
    "EMBEDDING_MODES",
    "SWITCHES",
    "DrafterCheckpoint",
    "detect_format",
    "read_checkpoint",
    "settle_embeddings",
    "write_checkpoint",
    "drafter_from_checkpoint",
    "convert_checkpoint",
    "load_target_parts",
    "TargetSource",
]
