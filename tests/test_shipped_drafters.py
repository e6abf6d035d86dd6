"""The reference drafters shipped in hf_eagle31/drafters/ load as remote code, as the README and demo promise."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

SHIPPED = Path(__file__).resolve().parents[1] / "hf_eagle31" / "drafters"
NAMES = ["smollm2-135m-instruct-eagle3", "smollm2-135m-instruct-eagle3.1"]


@pytest.mark.parametrize("name", NAMES)
def test_shipped_drafter_loads_with_trust_remote_code(name):
    path = SHIPPED / name
    drafter = AutoModel.from_pretrained(path, trust_remote_code=True)
    config = json.loads((path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_eagle3.Eagle3Drafter"
    assert drafter.config.draft_vocab_size == 8192 and drafter.config.target_layer_ids == [2, 15, 27]
    assert drafter.config.fc_norm == drafter.config.norm_output == name.endswith("eagle3.1")
    assert drafter.generation_config.num_assistant_tokens == 3
    assert not drafter.embeddings_ready  # taken from the target at load time
    assert drafter.lm_head.weight.dtype == torch.bfloat16 and torch.isfinite(drafter.lm_head.weight.float()).all()
    assert int(drafter.t2d.sum()) == 8192
    assert "## Results" in (path / "README.md").read_text() and "| **" in (path / "README.md").read_text()
