# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Drafting policies: named sets of `generate` options that decide how many tokens the drafter proposes per cycle
(docs/ARCHITECTURE.md, "Drafting policies"). They look only at the draft side, so verification stays lossless."""

from ..errors import InputError


# Drafting policies that `eval --policies` and `bench --policies` compare (each one more row/method,
# `<drafter>:<policy>`). Every policy sets all three switches, so the drafter's saved defaults
# (generation_config.json) never leak into another policy; the drafter alone is the drafter as shipped.
# A confidence policy may name its own threshold, `confidence@0.2` / `confidence+copy@0.5`, so that one run
# compares several thresholds side by side.
DRAFTING_POLICIES = ("constant", "heuristic", "confidence", "copy", "confidence+copy")
# What the confidence and copy policies use unless told otherwise: the shipped drafters' generation_config values.
DEFAULT_CONFIDENCE_THRESHOLD = 0.5
DEFAULT_COPY_TOKENS = 8


def drafting_policy(
    name: str, confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD, copy_tokens: int = DEFAULT_COPY_TOKENS
) -> dict:
    """The `generate` options of a drafting policy (see `DRAFTING_POLICIES`; `<policy>@<threshold>` overrides
    `confidence_threshold` for a confidence policy)."""
    base, at, threshold = name.partition("@")
    if base not in DRAFTING_POLICIES:
        raise InputError(
            f"unknown drafting policy {name!r}: use one of {', '.join(DRAFTING_POLICIES)} "
            "(confidence policies may add @<threshold>, e.g. confidence@0.2)."
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
    }
