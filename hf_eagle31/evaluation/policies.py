# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Drafting policies: named sets of `generate` options that decide how many tokens the drafter proposes per cycle
(docs/ARCHITECTURE.md, "Drafting policies"). They look only at the draft side, so verification stays lossless."""

from ..errors import InputError


# Drafting policies that `eval --policies` and `bench --policies` compare (each one more row/method,
# `<drafter>:<policy>`). Every policy sets all three switches, so the drafter's saved defaults
# (generation_config.json) never leak into another policy; the drafter alone is the drafter as shipped.
# A confidence policy may name its own threshold, `confidence@0.2` / `confidence+copy@0.5`, so that one run
# compares several thresholds side by side.
DRAFTING_POLICIES = ("constant", "heuristic", "confidence", "copy", "confidence+copy", "tree", "tree+copy")
# What the confidence and copy policies use unless told otherwise: the shipped drafters' generation_config values.
DEFAULT_CONFIDENCE_THRESHOLD = 0.5
DEFAULT_COPY_TOKENS = 8


def drafting_policy(
    name: str, confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD, copy_tokens: int = DEFAULT_COPY_TOKENS
) -> dict:
    """The `generate` options of a drafting policy (see `DRAFTING_POLICIES`; `<policy>@<threshold>` overrides
    `confidence_threshold` for a confidence policy; `tree[+copy]@DxKxN` names a tree's shape)."""
    if name.partition("@")[0] in ("tree", "tree+copy"):
        return _tree_policy(name, copy_tokens)
    base, at, threshold = name.partition("@")
    if base not in DRAFTING_POLICIES:
        raise InputError(
            f"unknown drafting policy {name!r}: use one of {', '.join(DRAFTING_POLICIES)} "
            "(confidence policies may add @<threshold>, e.g. confidence@0.2; trees a shape, e.g. tree@5x4x16)."
        )
    if at:
        try:
            value = float(threshold)
        except ValueError:
            value = None
        if "confidence" not in base or value is None or not 0.0 < value < 1.0:
            raise InputError(
                f"drafting policy {name!r}: only a confidence policy takes @<threshold>, a number "
                "strictly between 0 and 1 (e.g. confidence@0.2)."
            )
        confidence_threshold = value
    return {
        "num_assistant_tokens_schedule": "heuristic_transient" if base == "heuristic" else "constant",
        "assistant_confidence_threshold": confidence_threshold if "confidence" in base else 0.0,
        "prompt_lookup_num_tokens": copy_tokens if "copy" in base else 0,
        "draft_tree": False,
    }


def _tree_policy(name: str, copy_tokens: int) -> dict:
    """`tree[+copy][@DxKxN[:P]]`: a dynamic draft tree of depth D, top-K expansion, N nodes verified, growing a
    further depth only while its best frontier node has cumulative draft probability >= P (default: the defaults of
    modeling/tree_drafting.py), with the context copy as one more branch for `tree+copy`."""
    from ..modeling.tree_drafting import TREE_DEFAULTS

    base, _, spec = name.partition("@")
    shape, colon, probability = spec.partition(":")
    sizes = (TREE_DEFAULTS["tree_depth"], TREE_DEFAULTS["tree_topk"], TREE_DEFAULTS["tree_total_tokens"])
    min_probability = TREE_DEFAULTS["tree_min_probability"]
    if spec:
        try:
            sizes = tuple(int(v) for v in shape.split("x"))
            min_probability = float(probability) if colon else min_probability
        except ValueError:
            sizes = ()
        if len(sizes) != 3 or min(sizes) < 1 or not 0.0 <= min_probability < 1.0:
            raise InputError(
                f"drafting policy {name!r}: a tree shape is three integers >= 1, depthxtopkxnodes, optionally with "
                "the probability a depth needs to be grown, in [0, 1) (e.g. tree@5x4x16 or tree@3x4x10:0.05)."
            )
    depth, topk, total = sizes
    return {
        "draft_tree": True,
        "tree_depth": depth,
        "tree_topk": topk,
        "tree_total_tokens": total,
        "tree_min_probability": min_probability,
        "num_assistant_tokens_schedule": "constant",
        "assistant_confidence_threshold": 0.0,
        "prompt_lookup_num_tokens": copy_tokens if base == "tree+copy" else 0,
    }
