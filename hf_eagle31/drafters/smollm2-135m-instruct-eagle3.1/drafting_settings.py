# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The drafting settings of one `generate` call, typed and validated in one place.

Three doors lead here and all go through `DraftingSettings.resolve` / `parse_policy`:

    generate(..., num_assistant_tokens=K, draft_tree=True, tree_depth=3, ...)   the call's generation config
    the drafter's generation_config.json                                          its defaults
    "tree+copy@3x4x10:0.1", "confidence@0.2", ...                                 bench / eval policy strings

A value set in the call wins over the drafter's file; transformers fills unset fields with its global defaults
(K = 20, schedule "constant", confidence 0.4), which count as unset so that the drafter's own file applies.
Types are strict: booleans are booleans (`draft_tree="false"` is refused, not read as true), integers are integers
(`tree_depth=2.7` is refused, not truncated), and every message names the setting and where it came from.

This file travels with every Hub checkpoint (remote code): it imports the standard library only.
"""

import math
import os
from dataclasses import dataclass, replace


DEFAULT_NUM_DRAFT_TOKENS = 6
SCHEDULES = ("constant", "heuristic", "heuristic_transient")

CHAIN_HINT = "use chain drafting instead: generate(..., assistant_model=drafter, draft_tree=False)"


@dataclass(frozen=True)
class TreeSettings:
    """
    An EAGLE-2 dynamic draft tree: `depth` drafter forwards at most, the `topk` best children per expanded node, the
    `total` best nodes verified; a further depth is grown only while the best frontier node has cumulative draft
    probability >= `min_probability` (0 = always grow to `depth`).

    Defaults: depth 3, top-4, 10 nodes, gate 0.1 — measured fastest of the shapes tried with the shipped EAGLE-3.1
    drafter on this CPU in bf16 (docs/results/bench-trees-gated-*.log: 1.59x plain vs 1.50x ungated on MT-Bench).
    """

    depth: int = 3
    topk: int = 4
    total: int = 10
    min_probability: float = 0.1


# `draft_tree="auto"` (`adaptive_drafting.AdaptiveTreeGenerator`): the tree fields are bounds on the shapes it may
# choose, not the shape. Its defaults leave the choice to the measured costs: up to 8 depths, the 4 best children
# per fed node, 32 verified nodes (a long copy branch included), no probability gate (growth is priced instead).
AUTO_TREE = TreeSettings(depth=8, topk=4, total=32, min_probability=0.0)
AUTO_COPY_TOKENS = 32  # the `auto` policy's longest copy branch (each copied token is priced, the cap only bounds)


@dataclass(frozen=True)
class DraftingSettings:
    """What a `generate` call with a drafter drafts each cycle (docs/ARCHITECTURE.md, "Drafting policies")."""

    num_assistant_tokens: int = DEFAULT_NUM_DRAFT_TOKENS  # chain length K (the most a chain drafts)
    schedule: str = "constant"  # or "heuristic" / "heuristic_transient" (K += 2 after a full accept, -= 1 after a miss)
    confidence_threshold: float = 0.0  # a chain stops after a token whose draft probability is below it (0 = off)
    copy_tokens: int = 0  # copy-aware drafting: up to this many tokens continuing an n-gram match (0 = off)
    copy_ngram: int = 2  # the longest n-gram matched (down to 1)
    tree: TreeSettings | None = None  # a draft tree instead of a chain
    adaptive: bool = False  # draft_tree="auto": the shape is chosen per cycle under measured costs (`tree` = bounds)

    @property
    def policy(self) -> str:
        return "auto" if self.adaptive else "tree" if self.tree is not None else "chain"

    @classmethod
    def resolve(cls, generation_config, drafter=None) -> "DraftingSettings":
        """The settings of a call: its generation config over the drafter's generation_config.json, typed."""
        own = getattr(drafter, "generation_config", None)
        file = _config_file(drafter)
        defaults = _transformers_defaults()

        def get(name, unset=None):
            value = getattr(generation_config, name, None)
            if value is not None and not (name in defaults and value == defaults[name]):
                return value, "in generate()"
            value = getattr(own, name, None) if own is not None else None
            return (value, file) if value is not None else (unset, None)

        k = _integer("num_assistant_tokens", *get("num_assistant_tokens", DEFAULT_NUM_DRAFT_TOKENS), minimum=1,
                     what="the draft length must be >= 1 (the most tokens a cycle drafts)")
        schedule, source = get("num_assistant_tokens_schedule", "constant")
        if schedule not in SCHEDULES:
            raise ValueError(
                f"num_assistant_tokens_schedule={schedule!r} is not supported by EAGLE drafting: use 'constant', "
                f"'heuristic' or 'heuristic_transient'{_where(source)}."
            )
        threshold = _probability("assistant_confidence_threshold", *get("assistant_confidence_threshold", 0.0),
                                 what="the chain stops after a draft token whose drafter probability is below it "
                                 "(0 = always draft num_assistant_tokens)")
        copy_tokens = _integer("prompt_lookup_num_tokens", *get("prompt_lookup_num_tokens", 0), minimum=0,
                               what="copy-aware drafting needs a number of tokens >= 0 (0 = off)")
        ngram = _integer("max_matching_ngram_size", *get("max_matching_ngram_size", 2), minimum=1,
                         what="copy-aware drafting needs an n-gram size >= 1")
        draft_tree, source = get("draft_tree", False)
        if not isinstance(draft_tree, bool) and draft_tree != "auto":
            raise ValueError(
                f"draft_tree={draft_tree!r}: use a boolean, True or False (JSON true / false), or \"auto\" (the shape "
                f"chosen per cycle from measured costs), not {type(draft_tree).__name__} {draft_tree!r}{_where(source)}."
            )
        adaptive = draft_tree == "auto"
        tree = None
        if draft_tree:
            base = AUTO_TREE if adaptive else TreeSettings()
            tree = TreeSettings(
                depth=_integer("tree_depth", *get("tree_depth", base.depth), minimum=1, what=_TREE_SIZES),
                topk=_integer("tree_topk", *get("tree_topk", base.topk), minimum=1, what=_TREE_SIZES),
                total=_integer("tree_total_tokens", *get("tree_total_tokens", base.total), minimum=1, what=_TREE_SIZES),
                min_probability=_probability("tree_min_probability", *get("tree_min_probability", base.min_probability),
                                             what="use a probability in [0, 1) (0 = always grow)"),
            )
        return cls(k, schedule, threshold, copy_tokens, ngram, tree, adaptive)


# The generation-config fields of the settings (what `generate` must accept as kwargs).
FIELDS = (
    "num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold",
    "prompt_lookup_num_tokens", "max_matching_ngram_size",
    "draft_tree", "tree_depth", "tree_topk", "tree_total_tokens", "tree_min_probability",
)
# The fields transformers' GenerationConfig does not have: `install_generation_door` gives them class-level unset values.
TREE_FIELDS = ("draft_tree", "tree_depth", "tree_topk", "tree_total_tokens", "tree_min_probability")

_TREE_SIZES = "a draft tree needs tree_depth, tree_topk and tree_total_tokens all >= 1"


# ---------------------------------------------------------------------- policy strings (bench / eval)

POLICIES = ("constant", "heuristic", "confidence", "copy", "confidence+copy", "tree", "tree+copy", "auto")
DEFAULT_CONFIDENCE_THRESHOLD = 0.5
DEFAULT_COPY_TOKENS = 8


def parse_policy(name: str, confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
                 copy_tokens: int = DEFAULT_COPY_TOKENS) -> dict:
    """
    The `generate` options of a named drafting policy: one of `POLICIES`; a confidence policy may name its threshold
    (`confidence@0.2`, `confidence+copy@0.5`); a tree its shape and gate (`tree@5x4x16`, `tree+copy@3x4x10:0.05`);
    `auto` picks the shape per cycle from measured costs (`draft_tree="auto"`, its bounds and copies of up to
    `AUTO_COPY_TOKENS` tokens; it takes no @ suffix).
    Every policy sets every field, so a drafter's saved defaults never leak into another policy. The options go
    through `DraftingSettings.resolve` like any `generate` kwargs.
    """
    base, at, spec = name.partition("@")
    if base not in POLICIES:
        raise ValueError(
            f"unknown drafting policy {name!r}: use one of {', '.join(POLICIES)} (confidence policies may add "
            "@<threshold>, e.g. confidence@0.2; trees a shape, e.g. tree@5x4x16)."
        )
    if base == "auto":
        if at:
            raise ValueError(f"drafting policy {name!r}: `auto` takes no @ suffix (it picks its shape per cycle).")
        return {
            "draft_tree": "auto", "tree_depth": AUTO_TREE.depth, "tree_topk": AUTO_TREE.topk,
            "tree_total_tokens": AUTO_TREE.total, "tree_min_probability": AUTO_TREE.min_probability,
            "num_assistant_tokens_schedule": "constant", "assistant_confidence_threshold": 0.0,
            "prompt_lookup_num_tokens": AUTO_COPY_TOKENS,
        }
    if base.startswith("tree"):
        tree = TreeSettings()
        if at:
            shape, colon, gate = spec.partition(":")
            try:
                sizes = [int(v) for v in shape.split("x")]
                gate_value = float(gate) if colon else tree.min_probability
            except ValueError:
                sizes, gate_value = [], tree.min_probability
            if len(sizes) != 3 or min(sizes) < 1 or not 0.0 <= gate_value < 1.0:
                raise ValueError(
                    f"drafting policy {name!r}: a tree shape is three integers >= 1, depthxtopkxnodes, optionally "
                    "with the probability a depth needs to be grown, in [0, 1) (e.g. tree@5x4x16 or tree@3x4x10:0.05)."
                )
            tree = replace(tree, depth=sizes[0], topk=sizes[1], total=sizes[2], min_probability=gate_value)
        return {
            "draft_tree": True, "tree_depth": tree.depth, "tree_topk": tree.topk, "tree_total_tokens": tree.total,
            "tree_min_probability": tree.min_probability, "num_assistant_tokens_schedule": "constant",
            "assistant_confidence_threshold": 0.0, "prompt_lookup_num_tokens": copy_tokens if "copy" in base else 0,
        }
    if at:
        try:
            value = float(spec)
        except ValueError:
            value = None
        if "confidence" not in base or value is None or not 0.0 < value < 1.0:
            raise ValueError(
                f"drafting policy {name!r}: only a confidence policy takes @<threshold>, a number strictly between 0 "
                "and 1 (e.g. confidence@0.2)."
            )
        confidence_threshold = value
    return {
        "num_assistant_tokens_schedule": "heuristic_transient" if base == "heuristic" else "constant",
        "assistant_confidence_threshold": confidence_threshold if "confidence" in base else 0.0,
        "prompt_lookup_num_tokens": copy_tokens if "copy" in base else 0,
        "draft_tree": False,
    }


# ---------------------------------------------------------------------- typed reads


def _where(source):
    return f" ({source})" if source else ""


def _integer(name, value, source, minimum, what):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r}: use an integer >= {minimum}, not {type(value).__name__}; {what}"
                         f"{_where(source)}.")
    if value < minimum:
        raise ValueError(f"{name}={value}: {what}{_where(source)}.")
    return value


def _probability(name, value, source, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r}: use a number in [0, 1), not {type(value).__name__}; {what}"
                         f"{_where(source)}.")
    if math.isnan(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}={value} must lie in [0, 1): {what}{_where(source)}.")
    return float(value)


def _config_file(drafter) -> str:
    """Where the drafter's generation settings came from, for messages."""
    path = getattr(drafter, "name_or_path", "") or ""
    if path and os.path.isdir(path):
        return os.path.join(path, "generation_config.json")
    return f"the drafter's generation_config.json ({path})" if path else "the drafter's generation_config"


def _transformers_defaults() -> dict:
    """transformers' global defaults of the fields it owns (they count as unset in a call's generation config)."""
    from transformers import GenerationConfig

    read = getattr(GenerationConfig, "_get_default_generation_params", None)
    defaults = read() if read is not None else {}
    return {k: defaults[k] for k in ("num_assistant_tokens", "num_assistant_tokens_schedule",
                                     "assistant_confidence_threshold") if k in defaults}
