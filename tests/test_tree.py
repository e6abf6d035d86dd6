"""Dynamic draft trees inside `target.generate(..., assistant_model=drafter)` (modeling/tree_drafting.py): greedy
losslessness across target families and tree shapes, the drafter's tree mask, cache surgery, copy branch, sampling
(chi-square with a negative control), errors, remote code."""

import os
import random
import subprocess
import sys
import textwrap

import pytest
import torch
from test_generate import _exact_joint, _max_pair_chi2, make_oracle
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GenerationConfig,
    LogitsProcessorList,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    RepetitionPenaltyLogitsProcessor,
)
from transformers.cache_utils import DynamicCache
from transformers.generation.streamers import BaseStreamer

from hf_eagle31.modeling import TreeSettings, tree_drafting
from hf_eagle31.modeling.candidate_generator import EagleCandidateGenerator

from conftest import make_drafter, tiny_sizes, tiny_target


SIZES = tiny_sizes(num_hidden_layers=6, head_dim=8)


def family_target(name, seed=0):
    """Tiny random targets of several families; sliding windows of 5-6 so that trees cross them."""
    torch.manual_seed(seed)
    if name == "llama":
        return tiny_target(seed=seed, num_hidden_layers=6)
    if name == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**SIZES))
    elif name == "qwen2-sliding":
        model = Qwen2ForCausalLM(Qwen2Config(**SIZES, use_sliding_window=True, sliding_window=6, max_window_layers=3))
    elif name == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(**SIZES))
    elif name == "mistral":
        model = MistralForCausalLM(MistralConfig(**SIZES, sliding_window=6))
    elif name == "gemma2":
        model = Gemma2ForCausalLM(Gemma2Config(**SIZES, sliding_window=5))
    elif name == "gemma3":
        model = Gemma3ForCausalLM(Gemma3TextConfig(**SIZES, sliding_window=5, sliding_window_pattern=2))
    else:
        raise ValueError(name)
    return model.eval()


FAMILIES = ["llama", "qwen2", "qwen2-sliding", "qwen3", "mistral", "gemma2", "gemma3"]


def tree_config(depth, topk, total, **kw):
    return GenerationConfig(draft_tree=True, tree_depth=depth, tree_topk=topk, tree_total_tokens=total, **kw)


@pytest.mark.parametrize("family", FAMILIES)
def test_tree_greedy_equals_plain_generate_fuzzed(family):
    """Random and oracle drafters (the oracle puts the target's continuation in the tree, so paths are accepted
    deep and the kept cache entries are scattered), tree shapes from a chain to wide trees, eos and short budgets."""
    rng = random.Random(FAMILIES.index(family))
    target = family_target(family)
    for case in range(10):
        prompt = torch.tensor([[rng.randrange(64) for _ in range(rng.randint(1, 14))]])
        max_new = rng.choice([1, 3, 9, 20])
        reference = target.generate(prompt, max_new_tokens=max_new, do_sample=False)
        eos = None
        if case % 3 == 2 and reference.shape[1] > prompt.shape[1] + 1:
            eos = int(reference[0, rng.randrange(prompt.shape[1], reference.shape[1])])
            reference = target.generate(prompt, max_new_tokens=max_new, do_sample=False, eos_token_id=eos)
        variant = ["eagle3.1", "eagle3", "mtp"][case % 3]
        if case % 2:
            drafter = make_oracle(
                target, variant, reference, rng.choice([lambda q: True, lambda q: q % 3 != 0, lambda q: q % 4 == 1])
            )
        else:
            drafter = make_drafter(target, variant, draft_vocab_size=rng.choice([None, 40]), seed=case)
        shape = rng.choice([(1, 1, 1), (4, 1, 4), (3, 2, 6), (5, 4, 16), (4, 8, 30), (2, 64, 80)])
        config = tree_config(
            *shape,
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=eos,
            prompt_lookup_num_tokens=rng.choice([0, 4]),
            tree_min_probability=rng.choice([0.0, 0.1, 0.5]),
        )
        out = target.generate(prompt, generation_config=config, assistant_model=drafter)
        assert torch.equal(out, reference), f"{family} case {case} shape {shape} diverged from plain greedy"
        stats = drafter.last_speculation_stats
        assert stats.cycles >= 1 or out.shape[1] <= prompt.shape[1] + 1
        if case % 2 and max_new >= 9 and reference.shape[1] - prompt.shape[1] >= 9:
            assert stats.tau > 1.2, (family, case, stats.accepted)


def test_chain_shaped_tree_drafts_the_chain(target):
    """topk = 1: the tree is the chain the constant-K policy drafts (same tokens from the same drafter state)."""
    drafter = make_drafter(target, "eagle3.1")
    ids = torch.randint(0, 64, (1, 9), generator=torch.Generator().manual_seed(5))
    states = []
    for _ in range(2):
        gen = EagleCandidateGenerator(
            drafter,
            target,
            GenerationConfig(
                max_length=40, num_assistant_tokens=4, assistant_confidence_threshold=0.0, prompt_lookup_num_tokens=0
            ),
            ids,
        )
        gen.begin(torch.cat([ids, ids[:, :1]], dim=-1), target(ids, output_hidden_states=True), offset=0)
        states.append(gen)
    chain = states[0].propose(torch.cat([ids, ids[:, :1]], dim=-1)).tokens
    tokens, parents, depths = tree_drafting.grow_tree(states[1].state, depth=4, topk=1, total=4)
    assert tokens.tolist() == chain.tolist()
    assert parents.tolist() == [0, 1, 2, 3] and depths.tolist() == [1, 2, 3, 4]


def test_drafter_tree_mask_equals_separate_branches(target):
    """One batched forward of two sibling branches with a tree mask gives each branch's chain-step result."""
    drafter = make_drafter(target, "eagle3.1", num_hidden_layers=2)
    ids, feats = torch.randint(0, 64, (1, 7)), [torch.randn(1, 7, 32) for _ in range(3)]
    hidden = torch.randn(1, 1, 32)
    with torch.no_grad():
        separate = []
        for token in (5, 9):
            cache = DynamicCache()
            drafter(ids, target_hidden_states=feats, cache=cache)
            out = drafter(torch.tensor([[token]]), hidden_states=hidden, position_ids=torch.tensor([[7]]), cache=cache)
            separate.append(out.logits[0, -1])
        cache = DynamicCache()
        drafter(ids, target_hidden_states=feats, cache=cache)
        mask = torch.cat([torch.ones(2, 7, dtype=torch.bool), torch.eye(2, dtype=torch.bool)], dim=1)
        out = drafter(
            torch.tensor([[5, 9]]),
            hidden_states=hidden.expand(1, 2, -1),
            position_ids=torch.tensor([[7, 7]]),
            cache=cache,
            attention_mask=mask,
        )
    torch.testing.assert_close(out.logits[0, 0], separate[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits[0, 1], separate[1], rtol=1e-5, atol=1e-5)


def test_cache_surgery_keeps_only_the_accepted_path():
    """After generate with a tree, the target's cache equals the cache of a plain forward over the sequence."""
    target = family_target("gemma2")
    prompt = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    reference = target.generate(prompt, max_new_tokens=14, do_sample=False)
    drafter = make_oracle(target, "eagle3.1", reference, lambda q: q % 3 != 0)
    out = target.generate(
        prompt,
        generation_config=tree_config(4, 4, 12, max_new_tokens=14, do_sample=False, return_dict_in_generate=True),
        assistant_model=drafter,
    )
    assert torch.equal(out.sequences, reference)
    assert drafter.last_speculation_stats.tau > 1.5
    with torch.no_grad():
        full = target(reference[:, :-1], use_cache=True)
    name = "cache" if hasattr(full, "cache") else "past_key_values"  # (transformers 5.23: past_key_values)
    for mine, ref in zip(getattr(out, name).layers, getattr(full, name).layers):
        n = ref.keys.shape[-2]
        torch.testing.assert_close(mine.keys[..., -n:, :], ref.keys, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(mine.values[..., -n:, :], ref.values, rtol=1e-4, atol=1e-5)


def test_copy_branch_is_verified_with_the_tree(target):
    """A repetitive prompt: the context copy joins the tree as one more branch and gets accepted."""
    prompt = torch.tensor([[7, 8, 9, 10, 11, 12, 13, 7, 8, 9, 10, 11, 12, 13, 7, 8]])
    drafter = make_drafter(target, "eagle3.1")
    reference = target.generate(prompt, max_new_tokens=12, do_sample=False)
    out = target.generate(
        prompt,
        generation_config=tree_config(3, 2, 4, max_new_tokens=12, do_sample=False, prompt_lookup_num_tokens=6),
        assistant_model=drafter,
    )
    assert torch.equal(out, reference)
    stats = drafter.last_speculation_stats
    assert stats.copied_cycles > 0 and max(stats.draft_lengths) > 4


def test_streamer_stopping_criteria_logits_processor_and_scores(target):
    class Collect(BaseStreamer):
        def __init__(self):
            self.chunks, self.ended = [], False

        def put(self, value):
            self.chunks.append(value.flatten().tolist())

        def end(self):
            self.ended = True

    prompt = torch.tensor([[1, 2, 3, 4, 1, 2, 3]])
    processors = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.5)])
    reference = target.generate(
        prompt,
        max_new_tokens=15,
        do_sample=False,
        logits_processor=processors,
        output_scores=True,
        return_dict_in_generate=True,
    )
    drafter = make_oracle(target, "eagle3.1", reference.sequences, lambda q: True)
    streamer = Collect()
    out = target.generate(
        prompt,
        generation_config=tree_config(
            4, 3, 10, max_new_tokens=15, do_sample=False, output_scores=True, return_dict_in_generate=True
        ),
        assistant_model=drafter,
        logits_processor=processors,
        streamer=streamer,
    )
    assert torch.equal(out.sequences, reference.sequences)
    assert drafter.last_speculation_stats.tau > 2
    assert len(out.scores) == len(reference.scores) == 15
    for mine, ref in zip(out.scores, reference.scores):
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-4)
    assert streamer.ended and sum(streamer.chunks, [])[: prompt.shape[1]] == prompt[0].tolist()
    assert sum(streamer.chunks, []) == out.sequences[0].tolist()


def test_tree_sampling_keeps_target_distribution(monkeypatch):
    """With do_sample every emitted token is a draw from the target given the emitted prefix: chi-square (df = 24,
    alpha = 0.001 -> 51.2) against the exact joint; a walk that takes the most likely child instead fails it."""
    target = tiny_target(vocab_size=5, hidden_size=16)
    drafter = make_drafter(target, "eagle3.1")
    with torch.no_grad():
        target.lm_head.weight.mul_(8)
        drafter.lm_head.weight.mul_(30)
    prompt, temperature = torch.tensor([[1, 3, 2]]), 0.8
    joint = _exact_joint(target, prompt, 4, temperature)
    config = tree_config(3, 2, 5, max_new_tokens=4, do_sample=True, temperature=temperature, top_k=0)

    def sample(n):
        torch.manual_seed(0)
        accepted, samples = [], []
        for _ in range(n):
            samples.append(target.generate(prompt, generation_config=config, assistant_model=drafter)[0, 3:].tolist())
            accepted.extend(drafter.last_speculation_stats.accepted)
        return samples, accepted

    samples, accepted = sample(1000)
    assert _max_pair_chi2(samples, joint) < 51.2
    assert sum(accepted) > 0  # the trees were used

    honest = tree_drafting.target_choice

    def greedy_below_the_root(logits_processor, do_sample, prefix_ids, row):
        if prefix_ids.shape[1] > 3 and (prefix_ids.shape[1] % 2):  # a biased acceptance rule
            processed = logits_processor(prefix_ids, row.clone())
            return int(processed.argmax(-1)), processed
        return honest(logits_processor, do_sample, prefix_ids, row)

    monkeypatch.setattr(tree_drafting, "target_choice", greedy_below_the_root)
    samples, _ = sample(300)
    assert _max_pair_chi2(samples, joint) > 51.2


def test_targets_without_4d_masks_or_dynamic_caches_are_refused(target):
    drafter = make_drafter(target, "eagle3.1")
    prompt = torch.tensor([[1, 2, 3]])
    target.config._attn_implementation = "flex_attention"
    try:
        with pytest.raises(ValueError, match="chain drafting instead"):
            target.generate(prompt, generation_config=tree_config(3, 2, 4, max_new_tokens=4), assistant_model=drafter)
    finally:
        target.config._attn_implementation = "sdpa"
    with pytest.raises(ValueError, match="tree_depth=0"):
        target.generate(prompt, generation_config=tree_config(0, 2, 4, max_new_tokens=4), assistant_model=drafter)


def test_tree_policy_from_the_drafter_generation_config(target):
    drafter = make_drafter(target, "eagle3.1")
    prompt = torch.tensor([[1, 2, 3, 4]])
    reference = target.generate(prompt, max_new_tokens=10, do_sample=False)
    drafter.generation_config.draft_tree = True
    drafter.generation_config.tree_total_tokens = 7
    drafter.generation_config.tree_min_probability = 0.0  # a random drafter is never sure: grow every depth
    out = target.generate(prompt, max_new_tokens=10, do_sample=False, assistant_model=drafter)
    assert torch.equal(out, reference)
    assert max(drafter.last_speculation_stats.draft_lengths) == 7  # (fewer where the budget limits the depth)
    # ordinary generate options win over the drafter's config: draft_tree=False is the chain, tree fields shape it
    out = target.generate(
        prompt,
        max_new_tokens=10,
        assistant_model=drafter,
        draft_tree=False,
        num_assistant_tokens=3,
        prompt_lookup_num_tokens=0,
        assistant_confidence_threshold=0.0,
    )
    assert torch.equal(out, reference) and set(drafter.last_speculation_stats.draft_lengths) <= {1, 2, 3}
    out = target.generate(
        prompt, max_new_tokens=10, assistant_model=drafter, tree_total_tokens=3, tree_topk=3, prompt_lookup_num_tokens=0
    )
    assert torch.equal(out, reference) and max(drafter.last_speculation_stats.draft_lengths) == 3


CHILD = textwrap.dedent(
    """
    import sys, torch
    sys.modules["hf_eagle31"] = None  # any `import hf_eagle31` now fails
    from transformers import AutoModel, GenerationConfig, LlamaForCausalLM
    target_dir, drafter_dir = sys.argv[1:]
    target = LlamaForCausalLM.from_pretrained(target_dir).eval()
    prompt = torch.tensor([[4, 8, 15, 16, 23, 42]])
    plain = target.generate(prompt, max_new_tokens=20, do_sample=False)
    drafter = AutoModel.from_pretrained(drafter_dir, trust_remote_code=True).eval()
    assert type(drafter).__module__.startswith("transformers_modules"), type(drafter).__module__
    config = GenerationConfig(
        draft_tree=True, tree_depth=4, tree_topk=3, tree_total_tokens=9, tree_min_probability=0.0, max_new_tokens=20
    )
    assisted = target.generate(prompt, generation_config=config, assistant_model=drafter)
    assert torch.equal(plain, assisted)
    assert max(drafter.last_speculation_stats.draft_lengths) == 9, drafter.last_speculation_stats.draft_lengths
    print("ok")
    """
)


def test_tree_from_remote_code_without_package(tmp_path):
    target = tiny_target()
    target.save_pretrained(tmp_path / "target")
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    drafter.save_pretrained(tmp_path / "drafter", include_embeddings=False)
    assert (tmp_path / "drafter" / "tree_drafting.py").is_file()
    (tmp_path / "child.py").write_text(CHILD)
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "target"), str(tmp_path / "drafter")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_tree_drafting_policies():
    from hf_eagle31.evaluation import drafting_policy

    assert drafting_policy("tree") == {
        "draft_tree": True,
        "tree_depth": TreeSettings().depth,
        "tree_topk": TreeSettings().topk,
        "tree_total_tokens": TreeSettings().total,
        "tree_min_probability": TreeSettings().min_probability,
        "num_assistant_tokens_schedule": "constant",
        "assistant_confidence_threshold": 0.0,
        "prompt_lookup_num_tokens": 0,
    }
    copy = drafting_policy("tree+copy@6x8x40", copy_tokens=5)
    assert (copy["tree_depth"], copy["tree_topk"], copy["tree_total_tokens"], copy["prompt_lookup_num_tokens"]) == (
        6,
        8,
        40,
        5,
    )
    assert drafting_policy("constant")["draft_tree"] is False
    with pytest.raises(ValueError, match="three integers"):
        drafting_policy("tree@4x4")
    assert drafting_policy("tree+copy@3x4x10:0.25")["tree_min_probability"] == 0.25
    for bad in ("tree@3x4x10:1", "tree@3x4x10:-0.1", "tree@3x4x10:x"):
        with pytest.raises(ValueError, match=r"in \[0, 1\)"):
            drafting_policy(bad)


def test_min_probability_stops_growth_without_changing_the_output(target):
    """A frontier below `tree_min_probability` is not expanded (no drafter forward is spent on it); the gate only
    shapes the tree, so greedy output stays plain greedy's."""
    drafter = make_drafter(target, "eagle3.1")
    ids = torch.randint(0, 64, (1, 9), generator=torch.Generator().manual_seed(3))
    shapes = {}
    for gate in (0.0, 0.999):
        gen = EagleCandidateGenerator(drafter, target, GenerationConfig(max_length=40, prompt_lookup_num_tokens=0), ids)
        gen.begin(torch.cat([ids, ids[:, :1]], dim=-1), target(ids, output_hidden_states=True), offset=0)
        before = gen.stats.drafter_forwards
        _, _, depths = tree_drafting.grow_tree(gen.state, depth=4, topk=3, total=40, min_probability=gate)  # all
        shapes[gate] = (int(depths.max()), gen.stats.drafter_forwards - before)
    # a random drafter is never 99.9% sure of its pick: the gate keeps depth 1 and spends no forward
    assert shapes == {0.0: (4, 3), 0.999: (1, 0)}
    reference = target.generate(ids, max_new_tokens=12, do_sample=False)
    for gate in (0.05, 0.999):
        config = tree_config(4, 3, 12, max_new_tokens=12, do_sample=False, tree_min_probability=gate)
        assert torch.equal(target.generate(ids, generation_config=config, assistant_model=drafter), reference)
    with pytest.raises(ValueError, match="tree_min_probability=1.5"):
        target.generate(ids, generation_config=tree_config(3, 2, 6, tree_min_probability=1.5), assistant_model=drafter)


def test_settings_are_typed_and_name_their_source(target, tmp_path):
    """`draft_tree="false"`, `tree_depth=2.7` or `"three"`, in `generate` or in the drafter's generation_config.json,
    are refused in one line naming the setting and where it came from (never read loosely)."""
    import json

    from hf_eagle31 import Eagle3Drafter

    drafter = make_drafter(target, "eagle3.1")
    prompt = torch.tensor([[1, 2, 3]])
    for kwargs, what in (
        ({"draft_tree": "false"}, r"draft_tree='false': use a boolean.*\(in generate\(\)\)"),
        ({"draft_tree": True, "tree_depth": 2.7}, r"tree_depth=2.7: use an integer >= 1, not float"),
        ({"draft_tree": True, "tree_depth": "three"}, r"tree_depth='three': use an integer"),
        ({"draft_tree": True, "tree_min_probability": float("nan")}, r"tree_min_probability=nan must lie in"),
        ({"num_assistant_tokens_schedule": "sometimes"}, r"num_assistant_tokens_schedule='sometimes'"),
    ):
        with pytest.raises(ValueError, match=what) as error:
            target.generate(prompt, max_new_tokens=3, do_sample=False, assistant_model=drafter, **kwargs)
        assert "\n" not in str(error.value)
    drafter.save_pretrained(tmp_path / "d")
    config_file = tmp_path / "d" / "generation_config.json"
    config = json.loads(config_file.read_text())
    config["draft_tree"] = "false"
    config_file.write_text(json.dumps(config))
    loaded = Eagle3Drafter.from_pretrained(tmp_path / "d")
    with pytest.raises(ValueError, match=r"draft_tree='false'.*" + str(config_file)) as error:
        target.generate(prompt, max_new_tokens=3, do_sample=False, assistant_model=loaded)
    assert "\n" not in str(error.value)
    # a call's value wins over the file, typed the same way
    out = target.generate(prompt, max_new_tokens=3, do_sample=False, assistant_model=loaded, draft_tree=False)
    assert torch.equal(out, target.generate(prompt, max_new_tokens=3, do_sample=False))


def test_gate_on_the_device_gives_the_same_tree_and_output(target, monkeypatch):
    """`gate_on_host=False` (the accelerator default: no device read per gated depth) drafts every depth but keeps
    exactly the nodes the host-read gate keeps, so greedy output is unchanged; it then reads the device twice per
    cycle (the tree, the target's choices)."""
    from hf_eagle31.evaluation.loop_cost import measure_loop_cost
    from hf_eagle31.modeling import TreeCandidateGenerator

    drafter = make_drafter(target, "eagle3.1")
    ids = torch.randint(0, 64, (1, 9), generator=torch.Generator().manual_seed(3))
    for gate in (0.0, 0.05, 0.3, 0.999):
        trees = []
        for on_host in (True, False):
            gen = EagleCandidateGenerator(drafter, target, GenerationConfig(max_length=40), ids)
            gen.begin(torch.cat([ids, ids[:, :1]], dim=-1), target(ids, output_hidden_states=True), offset=0)
            out = tree_drafting.grow_tree(
                gen.state, depth=4, topk=3, total=12, min_probability=gate, gate_on_host=on_host
            )
            host = [t.tolist() for t in out]
            trees.append(tree_drafting._drop_gated(*host) if 0 in host[2] else tuple(host))
        assert [list(x) for x in trees[0]] == [list(x) for x in trees[1]], gate
    reference = target.generate(ids, max_new_tokens=16, do_sample=False)
    monkeypatch.setattr(TreeCandidateGenerator, "gate_on_host", False)
    config = tree_config(3, 4, 10, max_new_tokens=16, do_sample=False, tree_min_probability=0.05)
    assert torch.equal(target.generate(ids, generation_config=config, assistant_model=drafter), reference)
    cost = measure_loop_cost(
        target,
        drafter,
        [ids[0].tolist()] * 2,
        max_new_tokens=16,
        draft_tree=True,
        tree_min_probability=0.05,
        prompt_lookup_num_tokens=0,
    )
    reads = dict(cost["sync_sites"])
    assert reads.pop("tolist") == 2 * cost["cycles"]  # per cycle: the tree, the target's choices
    assert sum(reads.values()) <= 4 * cost["calls"]  # per call: generate's own checks, eos ids, the first token
