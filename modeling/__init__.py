# `hf_eagle31.modeling`: the self-contained remote-code files that every drafter checkpoint carries.
from .candidate_generator import EagleCandidateGenerator, SpeculationStats, install_generate_hook, tau_from_forwards
from .configuration_common import SWITCH_NAMES, VARIANTS, Variant, get_variant, variant_of
from .configuration_eagle3 import Eagle3Config
from .configuration_mtp import MtpConfig
from .modeling_eagle3 import Eagle3Drafter
from .modeling_mtp import MtpDrafter


def variant_classes(variant):
    """(config class, drafter class) of a registry variant (a name or a `Variant`)."""
    entry = get_variant(variant) if isinstance(variant, str) else variant
    return globals()[entry.config_class], globals()[entry.drafter_class]


__all__ = [
    "Eagle3Config",
    "Eagle3Drafter",
    "MtpConfig",
    "MtpDrafter",
    "EagleCandidateGenerator",
    "SpeculationStats",
    "install_generate_hook",
    "tau_from_forwards",
    "SWITCH_NAMES",
    "VARIANTS",
    "Variant",
    "get_variant",
    "variant_classes",
    "variant_of",
]
