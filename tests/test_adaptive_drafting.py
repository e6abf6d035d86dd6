"""The `auto` drafting policy (modeling/adaptive_drafting.py): exact greedy across target families, exact sampling,
shapes that switch every cycle (chain / tree / plain step) under a cost model the test controls, the plain steps'
features reaching the drafter, cost curves that drive the shape, a useless drafter driven to plain steps, the cost
model kept across calls, and the setting's parser."""

import random

import pytest
import torch
from test_generate import _exact_joint, _max_pair_chi2, make_oracle
from test_tree import FAMILIES, family_target
from transformers import GenerationConfig

from hf_eagle31.modeling import CostModel, DraftingSettings, adaptive_drafting, parse_policy
from hf_eagle31.modeling.candidate_generator import DrafterState
from hf_eagle31.modeling.draft_planner import DraftGate

from conftest import make_drafter, tiny_target


def auto_config(**kw):
    return GenerationConfig(draft_tree="auto", **kw)


class CurveCost(CostModel):
    """A cost model whose verification curve the test sets: `curve(n)` seconds for n tokens, drafter forwards
    `draft_s`; every size counts as measured. `curves` (a list) switches curve on each drafted cycle."""

    def __init__(self, curves, draft_s=1e-6):
        super().__init__()
        self.curves, self.draft_s, self.calls = curves, draft_s, 0

    @property
    def curve(self):
        return self.curves[(self.calls - 1) % len(self.curves)]

    def exploring(self, max_tokens):
        self.calls += 1  # once per drafted cycle
        return False

    def measured(self, num_tokens):
        return True

    def verify_time(self, num_tokens, context_length=0, optimistic=False):
        return self.curve(max(int(num_tokens), 1))

    def verify_times(self, count, context_length=0, optimistic=False):
        return [self.curve(n) for n in range(1, count + 1)]

    def draft_time(self, width, context_length=0):
        return self.draft_s


def FLAT(n):  # a GPU: verifying dozens of tokens costs one forward
    return 1.0


def STEEP(n):  # each further token dearer than the last: one or two drafted tokens pay, more do not
    return 1.0 + 0.25 * (n - 1) ** 2


def NO_DRAFT(n):  # any draft loses to a plain step
    return 1.0 if n == 1 else 1e6


def with_cost(monkeypatch, target, cost):
    monkeypatch.setitem(CostModel.registry, CostModel.key_of(target), cost)
    return cost


@pytest.mark.parametrize("family", FAMILIES)
def test_auto_greedy_equals_plain_generate_fuzzed(family):
    """Random and oracle drafters, copies on and off, eos and short budgets: the auto policy (real timings, whatever
    shapes they pick) emits plain greedy's tokens."""
    rng = random.Random(100 + FAMILIES.index(family))
    target = family_target(family)
    for case in range(8):
        base = [rng.randrange(64) for _ in range(rng.randint(1, 8))]
        prompt = torch.tensor([base * rng.choice([1, 2, 3])])  # repeats give the copy branches matches
        max_new = rng.choice([1, 3, 9, 24])
        reference = target.generate(prompt, max_new_tokens=max_new, do_sample=False)
        eos = None
        if case % 3 == 2 and reference.shape[1] > prompt.shape[1] + 1:
            eos = int(reference[0, rng.randrange(prompt.shape[1], reference.shape[1])])
            reference = target.generate(prompt, max_new_tokens=max_new, do_sample=False, eos_token_id=eos)
        variant = ["eagle3.1", "eagle3", "mtp"][case % 3]
        if case % 2:
            drafter = make_oracle(target, variant, reference, rng.choice([lambda q: True, lambda q: q % 3 != 0]))
        else:
            drafter = make_drafter(target, variant, draft_vocab_size=rng.choice([None, 40]), seed=case)
        config = auto_config(
            max_new_tokens=max_new, do_sample=False, eos_token_id=eos, prompt_lookup_num_tokens=rng.choice([0, 16])
        )
        out = target.generate(prompt, generation_config=config, assistant_model=drafter)
        assert torch.equal(out, reference), f"{family} case {case} diverged from plain greedy"
        stats = drafter.last_speculation_stats
        assert stats.policy == "auto"
        assert len(stats.shapes) >= stats.cycles


def test_shapes_switch_every_cycle_and_output_stays_exact(monkeypatch):
    """A cost curve that changes every drafted cycle (flat -> wide tree, steep -> short draft, any draft too dear ->
    plain step) with the gate retrying at once: every shape occurs, interleaved, and greedy stays plain greedy."""
    monkeypatch.setattr(adaptive_drafting, "DraftGate", lambda: DraftGate(first_retry=0, max_retry=0))
    for seed in range(3):
        target = tiny_target(seed=seed, num_hidden_layers=4)
        cost = with_cost(monkeypatch, target, CurveCost([FLAT, STEEP, NO_DRAFT]))
        prompt = torch.tensor([[5, 9, 2, 7, 5, 9, 2]])
        reference = target.generate(prompt, max_new_tokens=40, do_sample=False)
        drafter = make_oracle(target, "eagle3.1", reference, lambda q: q % 4 != 3)
        config = auto_config(max_new_tokens=40, do_sample=False, prompt_lookup_num_tokens=8)
        out = target.generate(prompt, generation_config=config, assistant_model=drafter)
        assert torch.equal(out, reference)
        shapes = drafter.last_speculation_stats.shapes
        assert cost.calls >= 6
        # the curve of cycle i is curves[i % 3]: a wide tree, one or two tokens, a plain step, and again
        flat, steep, plain = shapes[0::3][:-1], shapes[1::3][:-1], shapes[2::3]  # (the last cycle: a short budget)
        assert all(n == 0 for n, _, _ in plain), shapes
        assert all(0 < n <= 2 for n, _, _ in steep), shapes
        assert all(n > 8 and n > d for n, d, _ in flat), shapes


def test_flat_curve_grows_wide_trees_steep_curve_short_drafts(monkeypatch):
    target = tiny_target(seed=1, num_hidden_layers=4)
    prompt = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    reference = target.generate(prompt, max_new_tokens=30, do_sample=False)
    sizes = {}
    for name, curve in (("flat", FLAT), ("steep", STEEP)):
        with_cost(monkeypatch, target, CurveCost([curve]))
        drafter = make_oracle(target, "eagle3.1", reference, lambda q: True)
        config = auto_config(max_new_tokens=30, do_sample=False, prompt_lookup_num_tokens=0)
        assert torch.equal(target.generate(prompt, generation_config=config, assistant_model=drafter), reference)
        shapes = drafter.last_speculation_stats.shapes
        sizes[name] = (sum(n for n, _, _ in shapes) / len(shapes), max(n - d for n, d, _ in shapes))
    assert sizes["flat"][0] > 8 and sizes["flat"][1] > 0  # many nodes, branching
    assert sizes["steep"][0] <= 3, sizes


def test_a_drafter_that_is_always_wrong_is_driven_to_plain_steps(monkeypatch):
    """Verification twice as dear at 4 tokens as at 1, drafter forwards a tenth of a target forward: with a drafter
    whose tokens are never the target's the calibrated acceptance falls, drafts stop paying, and the gate takes
    plain steps (a retry now and then)."""
    target = tiny_target(seed=2, num_hidden_layers=4)
    with_cost(monkeypatch, target, CurveCost([lambda n: n**0.5], draft_s=0.1))
    prompt = torch.tensor([[7, 3, 11, 2]])
    reference = target.generate(prompt, max_new_tokens=60, do_sample=False)
    wrong = make_oracle(target, "eagle3.1", reference, lambda q: False)  # never proposes the target's token
    config = auto_config(max_new_tokens=60, do_sample=False, prompt_lookup_num_tokens=0)
    assert torch.equal(target.generate(prompt, generation_config=config, assistant_model=wrong), reference)
    shapes = wrong.last_speculation_stats.shapes
    first_plain = next(i for i, (n, _, _) in enumerate(shapes) if n == 0)
    assert first_plain <= 6, shapes
    late = shapes[first_plain:]
    assert sum(1 for n, _, _ in late if n == 0) >= 0.8 * len(late), shapes


def test_plain_steps_feed_the_drafter_in_one_catch_up_forward(monkeypatch):
    """After k plain steps the next drafted cycle feeds the k skipped positions in one drafter forward, with the
    features the plain steps computed: the drafter's state equals one fed position by position."""
    target = tiny_target(seed=3, num_hidden_layers=4)
    with_cost(monkeypatch, target, CurveCost([NO_DRAFT, FLAT]))  # the gate then waits 8 plain steps
    fed, original = [], DrafterState.feed

    def spy(self, input_ids, hidden_states):
        new = input_ids.shape[1] - 1 - self.num_fed
        original(self, input_ids, hidden_states)
        fed.append((new, input_ids.shape[1], self.logits.clone()))

    monkeypatch.setattr(DrafterState, "feed", spy)
    prompt = torch.tensor([[4, 8, 15, 16, 23]])
    drafter = make_drafter(target, "eagle3.1")
    config = auto_config(max_new_tokens=20, do_sample=False, prompt_lookup_num_tokens=0)
    out = target.generate(prompt, generation_config=config, assistant_model=drafter)
    assert torch.equal(out, target.generate(prompt, max_new_tokens=20, do_sample=False))
    assert drafter.last_speculation_stats.shapes[:9] == [(0, 0, 0)] * 9
    # the prompt, then the 9 skipped positions at once when drafting resumes
    assert [f[0] for f in fed[:2]] == [prompt.shape[1], 9], [f[0] for f in fed]
    # the drafter fed the whole sequence in one forward reaches the same logits at that position
    new, length, logits = fed[1]
    hidden = target(out[:, : length - 1], output_hidden_states=True).hidden_states
    monkeypatch.setattr(DrafterState, "feed", original)
    state = DrafterState(drafter, drafter.last_speculation_stats)
    state.feed(out[:, :length], hidden)
    torch.testing.assert_close(state.logits, logits, rtol=1e-4, atol=1e-4)


def test_auto_sampling_keeps_target_distribution(monkeypatch):
    """With do_sample the auto policy's trees (whatever shape the costs pick, here switching every cycle) keep every
    emitted token a draw from the target: chi-square (df = 24, alpha = 0.001 -> 51.2) against the exact joint."""
    monkeypatch.setattr(adaptive_drafting, "DraftGate", lambda: DraftGate(first_retry=0, max_retry=0))
    target = tiny_target(vocab_size=5, hidden_size=16)
    drafter = make_drafter(target, "eagle3.1")
    with torch.no_grad():
        target.lm_head.weight.mul_(8)
        drafter.lm_head.weight.mul_(30)
    with_cost(monkeypatch, target, CurveCost([FLAT, STEEP, NO_DRAFT, FLAT]))
    prompt, temperature = torch.tensor([[1, 3, 2]]), 0.8
    joint = _exact_joint(target, prompt, 4, temperature)
    config = auto_config(max_new_tokens=4, do_sample=True, temperature=temperature, top_k=0, prompt_lookup_num_tokens=4)
    torch.manual_seed(0)
    samples, accepted, shapes = [], [], set()
    for _ in range(600):
        samples.append(target.generate(prompt, generation_config=config, assistant_model=drafter)[0, 3:].tolist())
        stats = drafter.last_speculation_stats
        accepted += stats.accepted
        shapes |= {"plain" if n == 0 else "tree" if n > d else "chain" for n, d, _ in stats.shapes}
    assert _max_pair_chi2(samples, joint) < 51.2
    assert sum(accepted) > 0 and {"plain", "tree"} <= shapes, shapes


def test_cost_model_persists_across_calls_of_the_same_target():
    """The second call starts from the first call's measurements (one model per target, device and dtype)."""
    target = tiny_target(seed=4, num_hidden_layers=4)
    key = CostModel.key_of(target)
    CostModel.registry.pop(key, None)
    drafter = make_drafter(target, "eagle3.1")
    prompt = torch.tensor([[2, 4, 6, 8]])
    config = auto_config(max_new_tokens=12, do_sample=False)
    target.generate(prompt, generation_config=config, assistant_model=drafter)
    cost = CostModel.registry[key]
    first = cost.verify.observations
    # a new model measures V(1), the bar every plan must beat, with two plain steps first
    assert drafter.last_speculation_stats.shapes[:2] == [(0, 0, 0)] * 2 and cost.measured(1)
    target.generate(prompt, generation_config=config, assistant_model=drafter)
    assert CostModel.registry[key] is cost and cost.verify.observations > first
    other = tiny_target(seed=4, num_hidden_layers=4).to(torch.bfloat16)
    assert CostModel.key_of(other) != key


def test_auto_setting_and_policy_parse():
    settings = DraftingSettings.resolve(GenerationConfig(draft_tree="auto"))
    assert settings.adaptive and settings.policy == "auto" and settings.tree.depth == 8
    assert DraftingSettings.resolve(GenerationConfig(draft_tree="auto", tree_depth=3)).tree.depth == 3
    assert not DraftingSettings.resolve(GenerationConfig(draft_tree=True)).adaptive
    for bad in ("yes", "Auto", 1):
        with pytest.raises(ValueError, match=r"draft_tree=.*use a boolean, True or False .*or \"auto\""):
            DraftingSettings.resolve(GenerationConfig(draft_tree=bad))
    options = parse_policy("auto")
    assert options["draft_tree"] == "auto" and options["prompt_lookup_num_tokens"] > 8
    assert DraftingSettings.resolve(GenerationConfig(**options)).adaptive
    with pytest.raises(ValueError, match="no @ suffix"):
        parse_policy("auto@3")
    from hf_eagle31.errors import InputError
    from hf_eagle31.evaluation import DRAFTING_POLICIES, drafting_policy  # what bench / eval --policies read

    assert "auto" in DRAFTING_POLICIES and drafting_policy("auto") == options
    with pytest.raises(InputError, match="no @ suffix"):
        drafting_policy("auto@0.5")


def test_shape_summary_and_cost_model_printout():
    from hf_eagle31.evaluation.bench import format_cost_model
    from hf_eagle31.modeling import SpeculationStats

    a = SpeculationStats(shapes=[(0, 0, 0), (3, 3, 0)])
    b = SpeculationStats(shapes=[(10, 3, 4), (0, 0, 0)])
    pooled = SpeculationStats.pooled([a, b])
    assert pooled.shapes == a.shapes + b.shapes
    assert pooled.shape_summary() == (
        "4 cycles, 2 plain steps, 1 chains (mean 3.0 tokens), 1 trees (mean 10.0 nodes, depth 3.0), "
        "1 with copied tokens"
    )
    assert SpeculationStats().shape_summary() is None  # a fixed policy prints no shape line
    cost = CostModel()
    for n, seconds in ((1, 0.010), (1, 0.011), (12, 0.020), (12, 0.021)):
        cost.observe_verify(n, 100, seconds)
    cost.observe_draft(4, 0.002)
    text = format_cost_model(cost.summary())
    # (a bucket keeps the lower median of its last three timings: 10 and 11 ms read 10)
    assert "verify by tokens 1: 10.00 ms (2), 9-16: 20.00 ms (2)" in text, text
    assert "drafter forward by width 3-4: 2.00 ms (1)" in text, text


def test_demo_names_the_auto_policy():
    from hf_eagle31.commands.demo import describe_policy

    words = describe_policy(GenerationConfig(**parse_policy("auto")))
    assert words.startswith("auto: per cycle") and "depth 8" in words and "32 tokens" in words, words
    assert describe_policy(GenerationConfig(**parse_policy("tree+copy"))).startswith("dynamic draft tree")


def test_bench_compares_auto_and_profiles_its_cost_model(target):
    """`bench --policies auto --profile`: a row for the auto policy, a line of the shapes it chose, the cost model."""
    from hf_eagle31.evaluation.bench import benchmark, drafting_policy, format_report

    drafter = make_drafter(target, "eagle3.1", seed=5)
    report = benchmark(
        target,
        drafter,
        [[5, 6, 7, 8] * 4],
        max_new_tokens=16,
        num_assistant_tokens=3,
        warmup_tokens=2,
        progress=False,
        policies={"auto": drafting_policy("auto")},
        profile=True,
    )
    row = next(r for r in report["results"] if r["method"] == "drafter:auto")
    assert row["shapes"] and report["outputs_identical"]
    assert report["profile"]["cost_model"]["verify_observations"] > 0
    text = format_report(report)
    assert f"shapes chosen by drafter:auto: {row['shapes']}" in text
    assert "cost model (auto policy, measured online): verify by tokens 1:" in text
