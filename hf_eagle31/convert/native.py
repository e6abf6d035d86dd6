# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""The hf-eagle31 format: `Eagle3Config` + our key names (= speculators' / vLLM's), written with a model card."""

from pathlib import Path

from ..errors import InputError
from ..hub import save_drafter  # converted hf-eagle31 checkpoints get a README.md
from ..modeling import Eagle3Config
from .neutral import DrafterCheckpoint, drafter_from_checkpoint


def read(directory, config: dict, weights: dict, layer_ids, embeddings_from_target) -> DrafterCheckpoint:
    """Our layout (a directory or Hub id; `config` its config.json), checked by `Eagle3Config` itself."""
    if config.get("model_type") != Eagle3Config.model_type:
        raise InputError(
            f"{directory} is an MTP drafter: MTP heads are served from the target's own checkpoint by vLLM/SGLang, so "
            "only EAGLE-3 / EAGLE-3.1 drafters convert to other formats."
        )
    cfg = Eagle3Config.from_pretrained(directory)
    if layer_ids is not None:
        cfg.target_layer_ids = [int(i) for i in layer_ids]
    if cfg.embeddings_in_checkpoint and "embed_tokens.weight" not in weights and not embeddings_from_target:
        raise InputError(
            f"{directory} says embeddings_in_checkpoint=True but has no embed_tokens.weight (incomplete checkpoint): "
            "pass --target to take the target's embeddings."
        )
    return DrafterCheckpoint(cfg, dict(weights), "hf-eagle31", verifier=_verifier(cfg))


def _verifier(cfg):
    name = getattr(cfg, "target_name_or_path", None)
    return {"name_or_path": name, "architectures": []} if name else {}


def write(ckpt: DrafterCheckpoint, directory: Path, model_card=None):
    model = drafter_from_checkpoint(ckpt)
    if ckpt.verifier.get("name_or_path") and not getattr(model.config, "target_name_or_path", None):
        model.config.target_name_or_path = ckpt.verifier["name_or_path"]
    if model_card is None:
        model_card = {"base_model": ckpt.verifier.get("name_or_path")}
    save_drafter(model, directory, include_embeddings=ckpt.has_embeddings, model_card=model_card)
