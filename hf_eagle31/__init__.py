"""hf-eagle31: HuggingFace-native EAGLE-3 / EAGLE-3.1 / MTP speculative-decoding drafters that do not drift."""

from . import (
    hub,  # noqa: F401  (model cards and Hub uploads)
    modeling,
)
from .modeling import *  # noqa: F401,F403  (Eagle3Config, Eagle3Drafter, MtpConfig, MtpDrafter, ...)
from .small_batch import small_batch_linears


__version__ = "0.1.0"

__all__ = [*modeling.__all__, "small_batch_linears", "__version__"]
