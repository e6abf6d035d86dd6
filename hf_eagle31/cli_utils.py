# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Deprecated path (kept for one release): the commands' shared helpers are `hf_eagle31.commands.common`; the library
functions that lived here are `hf_eagle31.evaluation.timing` (`compile_target_generation`,
`static_cache_rollback_supported`)."""

import warnings

from .commands.common import *  # noqa: F403
from .evaluation.timing import compile_target_generation, static_cache_rollback_supported  # noqa: F401


warnings.warn(
    "hf_eagle31.cli_utils moved to hf_eagle31.commands.common (command helpers) and "
    "hf_eagle31.evaluation.timing (compile_target_generation, static_cache_rollback_supported); the old "
    "path goes away in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
