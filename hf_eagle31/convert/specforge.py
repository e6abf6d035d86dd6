# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
SpecForge's two meanings of `norm_output` in `midlayer` (EAGLE-format) checkpoints, and which one a conversion uses.

- post-norm-feed (vLLM, SGLang, speculators, SpecForge from PR #879): the next chain step gets the final-norm
  output, the state lm_head reads. Here: `norm_output=True`.
- pre-norm-feed (SpecForge before PR #879, merged 2026-09-15): "norm before lm_head"; the next step gets the pre-norm
  state (the EAGLE-3 chain). Here: `norm_output=False` (fc_norm kept).

The two SpecForge eras write the same config.json and the same keys: nothing in such a checkpoint says which one
wrote it. The only evidence read is `norm_output_semantics` (our key, written by `--to eagle` next to
`norm_output: true`, and addable by hand); without it an import refuses and asks for `--norm-output-semantics`.
vLLM-layout (`layers.N`) and speculators checkpoints have one meaning (post-norm-feed).
"""

from transformers.utils import logging

from ..errors import InputError
from .neutral import NORM_OUTPUT_SEMANTICS, SEMANTICS_KEY


logger = logging.get_logger(__name__)

CONSUMERS_POST = "vLLM, SGLang, speculators and SpecForge from PR #879 (merged 2026-09-15)"
CONSUMERS_PRE = "SpecForge before PR #879"


def _check_name(value, where):
    if value is not None and value not in NORM_OUTPUT_SEMANTICS:
        raise InputError(f"{where} {value!r} is not a norm_output meaning: use one of {list(NORM_OUTPUT_SEMANTICS)}.")


def norm_output_on_import(config: dict, semantics=None) -> bool:
    """
    Our `norm_output` for a `midlayer` config.json. `semantics` (--norm-output-semantics) is needed only when the
    config says `norm_output: true` and does not record its meaning; a recorded meaning that contradicts it refuses.
    """
    _check_name(semantics, "--norm-output-semantics")
    flag = bool(config.get("norm_output", (config.get("eagle_config") or {}).get("norm_output", False)))
    if not flag:
        return False
    recorded = config.get(SEMANTICS_KEY)
    _check_name(recorded, f"config.json {SEMANTICS_KEY}")
    if recorded is not None and semantics is not None and recorded != semantics:
        raise InputError(
            f"config.json records {SEMANTICS_KEY}={recorded!r} but --norm-output-semantics {semantics} was passed: "
            "drop the flag, or fix config.json if the record is wrong."
        )
    semantics = recorded or semantics
    if semantics is None:
        raise InputError(
            "config.json says norm_output: true, which SpecForge before PR #879 wrote for pre-norm-feed (norm before "
            "lm_head only) and vLLM / SGLang / speculators / SpecForge from #879 mean as post-norm-feed, and nothing "
            "in this checkpoint says which: pass --norm-output-semantics post-norm-feed (trained with SpecForge from "
            "#879, merged 2026-09-15) or pre-norm-feed (trained before it)."
        )
    source = "recorded in config.json" if recorded else "from --norm-output-semantics"
    if semantics == "pre-norm-feed":
        logger.warning(
            "norm_output: true read as pre-norm-feed (%s; SpecForge before PR #879): the next chain step gets the "
            "pre-norm state and only lm_head the normalised one, which is norm_output=False here (fc_norm kept as "
            "it is).",
            source,
        )
        return False
    logger.info(
        "norm_output: true read as post-norm-feed (%s): the next chain step gets the post-norm state, "
        "norm_output=True here.",
        source,
    )
    return True


def norm_output_on_export(norm_output: bool) -> dict:
    """The config.json entries that carry our `norm_output` into a `midlayer` export, with a note of who reads them
    that way."""
    if not norm_output:
        return {}
    logger.warning(
        "wrote norm_output: true meaning post-norm-feed (recorded as %s in config.json): %s read it so; %s reads it "
        "as pre-norm-feed and drafts differently from the second chain step.",
        SEMANTICS_KEY,
        CONSUMERS_POST,
        CONSUMERS_PRE,
    )
    return {"norm_output": True, SEMANTICS_KEY: "post-norm-feed"}
