# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Deprecated path (kept for one release): the shipped drafters' paths are `hf_eagle31.loading`
(`SHIPPED_DRAFTERS`, `DEFAULT_DRAFTER`); the `demo` command is `hf_eagle31.commands.demo`."""

import warnings

from .loading import DEFAULT_DRAFTER, SHIPPED_DRAFTERS  # noqa: F401


warnings.warn(
    "hf_eagle31.demo moved: DEFAULT_DRAFTER / SHIPPED_DRAFTERS are in hf_eagle31.loading; the old path "
    "goes away in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
