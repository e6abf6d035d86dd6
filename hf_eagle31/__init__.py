"""hf-eagle31: HuggingFace-native EAGLE-3 / EAGLE-3.1 / MTP speculative-decoding drafters that do not drift."""

from .modeling import (
    Eagle3Config,
    Eagle3Drafter,
    EagleCandidateGenerator,
    MtpConfig,
    MtpDrafter,
    SpeculationStats,
)

from . import hub  # noqa: F401  (installs the model-card writer used by save_pretrained / push_to_hub)

__version__ = "0.1.0"

__all__ = [
    "Eagle3Config",
    "Eagle3Drafter",
    "MtpConfig",
    "MtpDrafter",
    "EagleCandidateGenerator",
    "SpeculationStats",
    "__version__",
]
