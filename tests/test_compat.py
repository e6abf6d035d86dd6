"""transformers compatibility: the drafter's cache argument, the tested-version range and its checks."""

import logging
import re
from pathlib import Path

import pytest
import tomllib
import torch
from transformers import DynamicCache, GenerationConfig
from transformers.cache_utils import Cache
from transformers.generation.utils import GenerationMixin

from hf_eagle31.modeling import candidate_generator
from hf_eagle31.modeling.candidate_generator import TESTED_TRANSFORMERS, check_transformers_version

from conftest import make_drafter


def _prefix_and_step(drafter, target, ids, **cache_kwargs):
    """Feeds a 6-position prefix into a cache, then one chain step through `cache_kwargs` (the cache passed by name)."""
    feats = [
        h
        for i, h in enumerate(target(ids, output_hidden_states=True).hidden_states)
        if i in drafter.config.target_layer_ids
    ]
    cache = DynamicCache()
    drafter(ids[:, 1:7], target_hidden_states=[f[:, :6] for f in feats], cache=cache)
    name = next(iter(cache_kwargs))
    out = drafter(ids[:, 7:8], target_hidden_states=[f[:, 6:7] for f in feats], **{name: cache})
    return out, cache


def test_forward_takes_cache_and_the_deprecated_alias(target):
    drafter = make_drafter(target, "eagle3.1")
    ids = torch.randint(0, 64, (1, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, cache = _prefix_and_step(drafter, target, ids, cache=True)
        with pytest.warns(FutureWarning, match="pass `cache=`"):
            alias_out, alias_cache = _prefix_and_step(drafter, target, ids, past_key_values=True)
        fresh = drafter(ids[:, 7:8], target_hidden_states=[torch.zeros(1, 1, 32)] * 3)  # no context at all
    assert cache.get_seq_length() == alias_cache.get_seq_length() == 7  # the step was appended to the given cache
    assert out.cache is cache and out.past_key_values is cache
    torch.testing.assert_close(out.logits, alias_out.logits)
    assert not torch.allclose(out.logits, fresh.logits)


def test_forward_rejects_both_cache_names_and_unknown_keywords(target):
    drafter = make_drafter(target, "eagle3.1")
    ids = torch.zeros(1, 2, dtype=torch.long)
    feats = torch.zeros(1, 2, 96)
    with pytest.raises(ValueError, match="not both"):
        drafter(ids, target_hidden_states=feats, cache=DynamicCache(), past_key_values=DynamicCache())
    with pytest.raises(TypeError, match="cache_params"):
        drafter(ids, target_hidden_states=feats, cache_params=DynamicCache())


def test_pyproject_declares_the_tested_range():
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    specs = [d for d in pyproject["project"]["dependencies"] if re.match(r"transformers\b", d)]
    assert specs == [f"transformers{TESTED_TRANSFORMERS}"]


def _hf_eagle31_warnings(caplog, version):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_eagle31.modeling"):
        check_transformers_version(version)
    return [r.getMessage() for r in caplog.records if r.name == "hf_eagle31.modeling"]


def test_untested_transformers_release_warns_once_per_check_in_one_line(caplog):
    assert _hf_eagle31_warnings(caplog, "5.23.0") == []
    assert _hf_eagle31_warnings(caplog, "5.24.3") == []
    assert _hf_eagle31_warnings(caplog, "5.25.0") == []
    for version in ("5.22.2", "5.26.0", "5.26.0.dev0", "6.0.0"):
        (message,) = _hf_eagle31_warnings(caplog, version)
        assert version in message and TESTED_TRANSFORMERS in message and "\n" not in message


def test_missing_transformers_internals_raise_one_line(monkeypatch):
    monkeypatch.delattr(GenerationConfig, "_get_default_generation_params")
    with pytest.raises(
        RuntimeError, match=r"_get_default_generation_params.*pip install 'transformers>=5\.23"
    ) as error:
        check_transformers_version()
    assert "\n" not in str(error.value)


def test_the_door_contract_is_checked_by_name_in_one_line(monkeypatch):
    """The loop uses transformers' `_assisted_decoding` arguments, `prepare_inputs_for_generation` and the cache API
    by name: a release that drops one fails the cheap runtime check in one line naming it and the tested range."""
    assert candidate_generator.door_gaps() == []

    def _assisted_decoding(self, input_ids, logits_processor, stopping_criteria, generation_config, **model_kwargs):
        return None  # a release whose loop no longer receives the assistant

    monkeypatch.setattr(GenerationMixin, "_assisted_decoding", _assisted_decoding)
    door = r"_assisted_decoding\(assistant_model=...\).*pip install 'transformers>=5\.23"
    with pytest.raises(RuntimeError, match=door):
        check_transformers_version()
    monkeypatch.undo()
    monkeypatch.delattr(Cache, "get_mask_sizes")
    with pytest.raises(RuntimeError, match="Cache.get_mask_sizes") as error:
        check_transformers_version()
    assert "\n" not in str(error.value)


def test_remote_code_carries_no_source_reader():
    """The shipped remote code checks names and signatures only: no `ast` / `inspect.getsource` over transformers."""
    root = Path(__file__).resolve().parents[1] / "modeling"
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "import ast" not in text and "getsource" not in text, path.name


def test_num_drafting_tokens_bounds_every_cycle(target):
    """The recurrent-state history transformers >= 5.25 keeps is sized from it once: it must cover the longest cycle
    any policy can propose (a growing schedule, a copy), plus the last accepted token."""
    drafter = make_drafter(target)

    def generator(**options):
        config = GenerationConfig(**options)
        return drafter.get_candidate_generator(
            target=target, generation_config=config, input_ids=torch.zeros(1, 3, dtype=torch.long)
        )

    assert generator(num_assistant_tokens=3).num_drafting_tokens == 4
    assert generator(num_assistant_tokens=3, prompt_lookup_num_tokens=8).num_drafting_tokens == 10
    grown = generator(num_assistant_tokens=3, num_assistant_tokens_schedule="heuristic_transient")
    assert grown.num_drafting_tokens == grown.max_assistant_tokens + 1


def test_floors_in_pyproject_are_the_versions_ci_tests():
    """`.ci/oldest.txt` pins the oldest environment CI runs; pyproject's floors must be exactly those versions."""
    root = Path(__file__).resolve().parents[1]
    pins = dict(
        line.split("==")
        for line in (root / ".ci" / "oldest.txt").read_text().split("\n")
        if "==" in line and not line.startswith("#")
    )
    floors = {}
    for dep in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", dep)
        if match:
            floors[match.group(1).lower()] = match.group(2)
    for name in ("transformers", "peft", "accelerate", "huggingface-hub", "datasets", "safetensors"):
        assert pins[name].startswith(floors[name]), f"{name}: pyproject floor {floors[name]} but CI tests {pins[name]}"


def test_static_target_cache_with_a_drafter(target):
    """A static target cache: the speculation loop crops it like a dynamic one and stays exact (transformers < 5.24
    may refuse the combination itself, in one line)."""
    import transformers
    from packaging.version import Version

    drafter = make_drafter(target, "eagle3.1")
    ids = torch.randint(0, 64, (1, 10), generator=torch.Generator().manual_seed(0))
    plain = target.generate(ids, max_new_tokens=12, do_sample=False)
    try:
        out = target.generate(
            ids, max_new_tokens=12, do_sample=False, assistant_model=drafter, cache_implementation="static"
        )
    except ValueError as error:
        assert Version(transformers.__version__) < Version("5.24.0") and "\n" not in str(error)
        return
    assert torch.equal(out, plain) and drafter.last_speculation_stats.cycles >= 1
