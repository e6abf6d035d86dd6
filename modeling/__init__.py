# `hf_eagle31.modeling`: the self-contained remote-code files that every drafter checkpoint carries.
from .candidate_generator import EagleCandidateGenerator, SpeculationStats, install_generate_hook
from .configuration_eagle3 import Eagle3Config
from .configuration_mtp import MtpConfig
from .modeling_eagle3 import Eagle3Drafter
from .modeling_mtp import MtpDrafter

__all__ = [
    "Eagle3Config",
    "Eagle3Drafter",
    "MtpConfig",
    "MtpDrafter",
    "EagleCandidateGenerator",
    "SpeculationStats",
    "install_generate_hook",
]
