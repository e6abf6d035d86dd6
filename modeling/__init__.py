# `hf_eagle31.modeling`: the self-contained remote-code files that every drafter checkpoint carries.
from .acceptance_model import AcceptanceModel, CopyAcceptanceModel
from .candidate_generator import EagleCandidateGenerator
from .configuration_common import SWITCH_NAMES, VARIANTS, Variant, get_variant, variant_of
from .configuration_eagle3 import Eagle3Config
from .configuration_mtp import MtpConfig
from .context_index import ContextIndex
from .cost_model import CostModel
from .draft_planner import DraftGate, TreePlan, plan_tree, should_grow
from .drafting_settings import DraftingSettings, TreeSettings, parse_policy
from .modeling_eagle3 import Eagle3Drafter
from .modeling_mtp import MtpDrafter
from .speculation_stats import SpeculationStats, tau_from_forwards
from .speculative_decoding import install_generation_door, speculative_generate
from .tree_drafting import TreeCandidateGenerator


def variant_classes(variant: str | Variant) -> tuple[type, type]:
    """(config class, drafter class) of a registry variant (a name or a `Variant`)."""
    entry = get_variant(variant) if isinstance(variant, str) else variant
    return globals()[entry.config_class], globals()[entry.drafter_class]


# model_type -> drafter class (what a checkpoint's config.json names), read from the registry.
DRAFTER_CLASSES = {entry.model_type: variant_classes(entry)[1] for entry in VARIANTS.values()}


__all__ = [
    "AcceptanceModel",
    "ContextIndex",
    "CopyAcceptanceModel",
    "CostModel",
    "DraftGate",
    "TreePlan",
    "plan_tree",
    "should_grow",
    "DRAFTER_CLASSES",
    "Eagle3Config",
    "Eagle3Drafter",
    "MtpConfig",
    "MtpDrafter",
    "DraftingSettings",
    "EagleCandidateGenerator",
    "SpeculationStats",
    "TreeCandidateGenerator",
    "TreeSettings",
    "install_generation_door",
    "parse_policy",
    "speculative_generate",
    "tau_from_forwards",
    "SWITCH_NAMES",
    "VARIANTS",
    "Variant",
    "get_variant",
    "variant_classes",
    "variant_of",
]
