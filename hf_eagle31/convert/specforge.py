# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
SpecForge's two meanings of `norm_output` in `midlayer` (EAGLE-format) checkpoints, and which one a conversion uses.

- post-norm-feed (vLLM, SGLang, speculators, SpecForge from PR #879): the next chain step gets the final-norm
  output, the state lm_head reads. Here: `norm_output=True`.
- pre-norm-feed (SpecForge before PR #879, merged 2026-09-15): "norm before lm_head"; the next step gets the pre-norm
  state (the EAGLE-3 chain). Here: `norm_output=False` (fc_norm kept).

The two SpecForge eras write the same config.json and the same keys: nothing in such a checkpoint says which one
wrote it. The only evidence read is `norm_output_semantics` (our key, written by `--to eagle` next to
`norm_output: true`, and addable by hand); without it an import refuses and asks for `--norm-output-semantics`
(`norm_output_semantics=` in `Eagle3Drafter.from_pretrained`). vLLM-layout (`layers.N`) and speculators checkpoints
have one meaning (post-norm-feed). The import side is `norm_output_on_import` in `modeling/checkpoint_formats.py`
(shared with `from_pretrained`); the export side is here.
"""

from transformers.utils import logging

from ..modeling.checkpoint_formats import CONSUMERS_POST, CONSUMERS_PRE, SEMANTICS_KEY


logger = logging.get_logger(__name__)


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
