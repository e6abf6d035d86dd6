# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Deprecated path of `hf_eagle31.training.draft_vocab` (kept for one release)."""

from .utils.deprecation import moved_module


moved_module(__name__, "hf_eagle31.training.draft_vocab")
