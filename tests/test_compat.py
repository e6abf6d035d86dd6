"""transformers compatibility: the drafter's cache argument, the tested-version range and its checks."""

import logging
import re
from pathlib import Path

import pytest
import tomllib
import torch
from transformers import DynamicCache, GenerationConfig
from transformers.generation.utils import GenerationMixin

from hf_eagle31.modeling import candidate_generator
from hf_eagle31.modeling.candidate_generator import (
    TESTED_TRANSFORMERS,
    EagleCandidateGenerator,
    check_transformers_version,
)

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


def test_candidate_generator_conforms_to_the_installed_assisted_loop(target):
    """Every member the installed `_assisted_decoding` reads from a candidate generator (derived from its source) is
    provided by ours, with call signatures that accept the loop's calls; and every public member that all of
    transformers' built-in generators add to the base class is ours too. transformers 5.25's `num_drafting_tokens`
    fails both checks on a generator without it."""
    import transformers.generation.candidate_generator as builtin

    protocol = candidate_generator.assisted_loop_protocol()
    assert protocol and {"get_candidates", "update_candidate_strategy", "requires_model_outputs"} <= set(protocol)
    assert candidate_generator.protocol_gaps(EagleCandidateGenerator) == []
    generator = make_drafter(target).get_candidate_generator(
        target=target, generation_config=GenerationConfig(), input_ids=torch.zeros(1, 3, dtype=torch.long)
    )
    assert candidate_generator.protocol_gaps(generator) == []
    assert candidate_generator.builtin_surface_gaps(EagleCandidateGenerator) == []
    if "num_drafting_tokens" in protocol:  # both checks would have caught the 5.25 break
        assert "`num_drafting_tokens`" in candidate_generator.protocol_gaps(builtin.CandidateGenerator)
        assert "`num_drafting_tokens`" in candidate_generator.builtin_surface_gaps(builtin.CandidateGenerator)


def test_a_new_protocol_member_fails_generate_in_one_line(monkeypatch, target):
    """A release whose loop reads a member our generator lacks: one line naming the member and the tested range."""
    original = GenerationMixin._assisted_decoding

    def _assisted_decoding(
        self,
        input_ids,
        logits_processor=None,
        stopping_criteria=None,
        generation_config=None,
        synced_gpus=False,
        streamer=None,
        inputs_tensor=None,
        assistant_model=None,
        assistant_tokenizer=None,
        tokenizer=None,
        **model_kwargs,
    ):
        candidate_generator = self._get_candidate_generator(
            generation_config=generation_config,
            input_ids=input_ids,
            inputs_tensor=inputs_tensor,
            assistant_model=assistant_model,
            logits_processor=logits_processor,
            target_tokenizer=tokenizer,
            assistant_tokenizer=assistant_tokenizer,
            model_kwargs=model_kwargs,
        )
        candidate_generator.get_candidates(input_ids, model_outputs=None, is_first_iteration=True, new_keyword=1)
        return candidate_generator.brand_new_member

    monkeypatch.setattr(GenerationMixin, "_assisted_decoding", _assisted_decoding)
    gaps = candidate_generator.protocol_gaps(EagleCandidateGenerator)
    assert gaps == ["`brand_new_member`"]  # get_candidates takes **kwargs: the new keyword is accepted
    monkeypatch.setattr(GenerationMixin, "_assisted_decoding", original)

    def strict(self, input_ids, model_outputs=None):  # a generator that would reject the loop's keywords
        return input_ids, None

    monkeypatch.setattr(EagleCandidateGenerator, "get_candidates", strict)
    assert any(g.startswith("`get_candidates(") for g in candidate_generator.protocol_gaps(EagleCandidateGenerator))
    monkeypatch.undo()

    monkeypatch.setattr(GenerationMixin, "_assisted_decoding", _assisted_decoding)
    with pytest.raises(RuntimeError, match=r"brand_new_member.*pip install 'transformers>=5\.23") as error:
        target.generate(
            torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False, assistant_model=make_drafter(target)
        )
    assert "\n" not in str(error.value)


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


def test_assisted_loop_protocol_change_is_detected(monkeypatch):
    def _assisted_decoding(self, *args, **kwargs):  # a loop that never hands the target's outputs to generators
        return None

    monkeypatch.setattr(GenerationMixin, "_assisted_decoding", _assisted_decoding)
    with pytest.raises(RuntimeError, match="requires_model_outputs"):
        check_transformers_version()
    assert candidate_generator._assisted_loop_passes_model_outputs(type("NoLoop", (), {})) is False


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
    """transformers >= 5.24 lets assisted decoding use a static target cache; older releases refuse it themselves."""
    import transformers
    from packaging.version import Version

    drafter = make_drafter(target, "eagle3.1")
    ids = torch.randint(0, 64, (1, 10), generator=torch.Generator().manual_seed(0))
    plain = target.generate(ids, max_new_tokens=12, do_sample=False)
    if Version(transformers.__version__) < Version("5.24.0"):
        with pytest.raises(ValueError, match="Static cache"):
            target.generate(
                ids, max_new_tokens=12, do_sample=False, assistant_model=drafter, cache_implementation="static"
            )
        return
    out = target.generate(
        ids, max_new_tokens=12, do_sample=False, assistant_model=drafter, cache_implementation="static"
    )
    assert torch.equal(out, plain) and drafter.last_speculation_stats.cycles >= 1
