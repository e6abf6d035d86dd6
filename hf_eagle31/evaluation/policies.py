# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Drafting policies: named sets of `generate` options that decide how many tokens the drafter proposes per cycle
(docs/ARCHITECTURE.md, "Drafting policies"). They look only at the draft side, so verification stays lossless.

The syntax and the types are those of `modeling/drafting_settings.py` (`parse_policy`), the one parser shared with
`generate` kwargs and the drafter's generation_config.json; this module turns its ValueError into the CLI's one-line
InputError."""

from ..errors import InputError
from ..modeling.drafting_settings import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_COPY_TOKENS, parse_policy
from ..modeling.drafting_settings import POLICIES as DRAFTING_POLICIES


__all__ = ["DEFAULT_CONFIDENCE_THRESHOLD", "DEFAULT_COPY_TOKENS", "DRAFTING_POLICIES", "drafting_policy"]


def drafting_policy(
    name: str, confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD, copy_tokens: int = DEFAULT_COPY_TOKENS
) -> dict:
    """The `generate` options of a drafting policy (see `DRAFTING_POLICIES`; `<policy>@<threshold>` overrides
    `confidence_threshold` for a confidence policy; `tree[+copy]@DxKxN[:P]` names a tree's shape and gate)."""
    try:
        return parse_policy(name, confidence_threshold, copy_tokens)
    except ValueError as error:
        raise InputError(str(error)) from None
