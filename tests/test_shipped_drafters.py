"""The reference drafters shipped in hf_eagle31/drafters/ load as remote code and draft inside `generate`, as the
README and demo promise, with code files identical to `modeling/`."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, GenerationConfig, LlamaConfig, LlamaForCausalLM

from conftest import SMOLLM2_SIZES


ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "hf_eagle31" / "drafters"
NAMES = ["smollm2-135m-instruct-eagle3", "smollm2-135m-instruct-eagle3.1"]


def smollm2_shaped_target():
    """A random target with SmolLM2-135M's shape (what `check_target` compares), but a tiny MLP: fast on a CPU."""
    torch.manual_seed(0)
    config = LlamaConfig(
        **SMOLLM2_SIZES,
        intermediate_size=64,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("name", NAMES)
def test_shipped_drafter_loads_with_trust_remote_code(name):
    path = SHIPPED / name
    drafter = AutoModel.from_pretrained(path, trust_remote_code=True)
    config = json.loads((path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_eagle3.Eagle3Drafter"
    assert drafter.config.draft_vocab_size == 8192 and drafter.config.target_layer_ids == [2, 15, 27]
    assert drafter.config.fc_norm == drafter.config.norm_output == name.endswith("eagle3.1")
    assert config.get("num_hidden_layers", 1) == drafter.config.num_hidden_layers == len(drafter.layers) == 1
    assert drafter.generation_config.num_assistant_tokens >= 1
    # the policy defaults of `bench` / `eval` (--confidence-threshold, --copy-tokens) are the shipped values
    from hf_eagle31.evaluation import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_COPY_TOKENS

    assert drafter.generation_config.assistant_confidence_threshold == DEFAULT_CONFIDENCE_THRESHOLD
    assert drafter.generation_config.prompt_lookup_num_tokens == DEFAULT_COPY_TOKENS
    # the shipped policy is the measured-best tree with the copy branch (docs/results/bench-trees-*.log)
    from hf_eagle31.modeling import DraftingSettings, TreeSettings

    config = drafter.generation_config
    assert config.draft_tree is True
    assert DraftingSettings.resolve(GenerationConfig(), drafter).tree == TreeSettings()
    assert not drafter.embeddings_ready  # taken from the target at load time
    assert drafter.lm_head.weight.dtype == torch.bfloat16 and torch.isfinite(drafter.lm_head.weight.float()).all()
    assert int(drafter.t2d.sum()) == 8192
    assert "## Results" in (path / "README.md").read_text() and "| **" in (path / "README.md").read_text()


def test_config_without_the_depth_field_loads_as_one_layer(tmp_path):
    """A config.json written before drafters had their own `num_hidden_layers` (the published EAGLE-3 layout) loads
    as the one-layer drafter it is."""
    import shutil

    path = tmp_path / "legacy"
    shutil.copytree(SHIPPED / NAMES[0], path)
    config = json.loads((path / "config.json").read_text())
    config.pop("num_hidden_layers", None)
    (path / "config.json").write_text(json.dumps(config))
    drafter = AutoModel.from_pretrained(path, trust_remote_code=True)
    assert drafter.config.num_hidden_layers == len(drafter.layers) == 1


@pytest.mark.parametrize("name", NAMES)
def test_shipped_drafter_drafts_inside_generate(name):
    target = smollm2_shaped_target()
    drafter = AutoModel.from_pretrained(SHIPPED / name, trust_remote_code=True, dtype=torch.float32)
    ids = torch.randint(0, 49152, (1, 12), generator=torch.Generator().manual_seed(1))
    plain = target.generate(ids, max_new_tokens=8, do_sample=False)
    assisted = target.generate(ids, max_new_tokens=8, do_sample=False, assistant_model=drafter)
    assert torch.equal(plain, assisted)
    stats = drafter.last_speculation_stats
    assert stats.cycles >= 1 and stats.drafter_forwards >= stats.cycles


@pytest.mark.parametrize("name", NAMES)
def test_shipped_drafter_code_is_modeling(name):
    """The remote code a shipped drafter carries is byte-identical to modeling/ (re-save the drafters otherwise)."""
    shipped = sorted(p.name for p in (SHIPPED / name).glob("*.py"))
    assert shipped, f"{name} carries no code files"
    assert {"modeling_eagle3.py", "configuration_eagle3.py", "drafter_common.py", "candidate_generator.py"} <= set(
        shipped
    )
    for file in shipped:
        assert (SHIPPED / name / file).read_bytes() == (ROOT / "modeling" / file).read_bytes(), (
            f"hf_eagle31/drafters/{name}/{file} differs from modeling/{file}: re-save the shipped drafters"
        )
