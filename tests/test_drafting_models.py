"""The measured drafting policy's building blocks (issue 34): the online cost model (modeling/cost_model.py), the
calibrated acceptance models (modeling/acceptance_model.py), the planner (modeling/draft_planner.py) and the context
index for copy branches (modeling/context_index.py). Synthetic and deterministic: simulated verification-cost
curves, simulated drafters, seeded random sequences against brute-force references."""

import itertools
import random
from types import SimpleNamespace

import pytest
import torch

from hf_eagle31.modeling.acceptance_model import (
    AcceptanceModel,
    CopyAcceptanceModel,
    acceptance_events,
    coverage_events,
    path_values,
)
from hf_eagle31.modeling.context_index import ContextIndex, add_copy_branches
from hf_eagle31.modeling.cost_model import CostModel
from hf_eagle31.modeling.draft_planner import (
    DraftGate,
    expected_rate,
    expected_rate_without_draft,
    plan_tree,
    select_nodes,
    should_grow,
)
from hf_eagle31.modeling.tree_drafting import add_copy_branch


ONE_TOKEN_S = 0.02  # a 1-token target forward of a 135M model on a CPU

# Verification cost relative to a 1-token forward, as measured (issue 34): fp32 on a CPU 1.6x at 4 tokens and 2.2x at
# 12; bf16 1.2x at 12; a GPU ~1x up to dozens. "linear": every verified position costs a whole forward.
CURVES = {
    "fp32": [(1, 1.0), (4, 1.6), (12, 2.2), (64, 6.0), (256, 20.0)],
    "bf16": [(1, 1.0), (12, 1.2), (64, 2.0), (256, 6.0)],
    "gpu": [(1, 1.0), (64, 1.05), (256, 1.5)],
    "linear": [(1, 1.0), (256, 256.0)],
}


def curve_seconds(name, n, context=0, per_context_token=0.0):
    points = CURVES[name]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if n <= x1:
            return ONE_TOKEN_S * (y0 + (y1 - y0) * (n - x0) / (x1 - x0)) + per_context_token * context
    raise ValueError(n)


def fed(curve, sizes=range(1, 65), repeats=3, context=100, draft_s=0.003):
    """A cost model that observed `curve` at every size in `sizes`, and a drafter forward of `draft_s`."""
    model = CostModel()
    for _ in range(repeats):
        for n in sizes:
            model.observe_verify(n, context, curve_seconds(curve, n))
        for w in (1, 4, 8):
            model.observe_draft(w, draft_s)
    return model


# ---------------------------------------------------------------------- cost model


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_cost_model_learns_the_curve_and_interpolates_monotonically(curve):
    model = fed(curve, sizes=[1, 2, 4, 8, 16, 32, 64])
    for n in (1, 2, 4, 8, 16, 32, 64):  # observed sizes: their measurement
        assert model.verify_time(n, 100) == pytest.approx(curve_seconds(curve, n), rel=0.02)
    for n in (3, 6, 12, 24, 48):  # unobserved sizes between observed ones: between their neighbours
        low, high = model.verify_time(n // 2 if n % 2 == 0 else n - 1, 100), model.verify_time(2 * n, 100)
        assert low <= model.verify_time(n, 100) <= high
    times = model.verify_times(64, 100)
    assert len(times) == 64 and all(a <= b for a, b in zip(times, times[1:]))
    assert model.draft_time(4) == pytest.approx(0.003)


def test_cost_model_ignores_isolated_stalls_and_the_slow_first_forward():
    model = CostModel()
    rng = random.Random(0)
    model.observe_verify(4, 50, 10 * curve_seconds("fp32", 4))  # a process's first forward: lazy initialisation
    for step in range(60):
        stall = 10.0 if step % 7 == 3 else 1.0  # an isolated scheduler stall every 7 cycles
        model.observe_verify(4, 50, stall * curve_seconds("fp32", 4) * rng.uniform(0.97, 1.03))
    assert model.verify_time(4, 50) == pytest.approx(curve_seconds("fp32", 4), rel=0.05)


def test_cost_model_forgets_when_the_machine_changes():
    model = CostModel()
    for _ in range(50):
        model.observe_verify(8, 0, 0.02)
    for _ in range(60):  # another process now shares the cores: every forward takes twice as long
        model.observe_verify(8, 0, 0.04)
    assert model.verify_time(8, 0) == pytest.approx(0.04, rel=0.05)


def test_cost_model_fits_the_context_term():
    model = CostModel()
    per_token = 4e-6  # 4 us per cached position
    for context in range(100, 2100, 50):  # a growing answer
        for n in (1, 4, 8):
            model.observe_verify(n, context, curve_seconds("bf16", n, context, per_token))
    assert model.summary()["verify_seconds_per_context_token"] == pytest.approx(per_token, rel=0.1)
    for context in (500, 3000):
        assert model.verify_time(4, context) == pytest.approx(curve_seconds("bf16", 4, context, per_token), rel=0.03)


def test_unobserved_sizes_get_a_conservative_prior_and_an_optimistic_bound():
    model = fed("gpu", sizes=[1, 2, 4])  # nothing above 4 measured
    v4 = model.verify_time(4, 0)
    for n in (8, 32):
        estimate, optimistic = model.verify_time(n, 0), model.verify_time(n, 0, optimistic=True)
        # conservative: grows like (n / 4) ** prior_growth although the true curve is flat
        assert estimate == pytest.approx(v4 * (n / 4) ** 0.5, rel=0.02)
        assert optimistic == pytest.approx(v4, rel=0.02)  # the lowest cost monotonicity allows
    # below the first measured size: the estimate falls with the same exponent, the bound linearly
    small = fed("gpu", sizes=[8])
    assert small.verify_time(2, 0) == pytest.approx(small.verify_time(8, 0) * 0.5, rel=0.02)
    assert small.verify_time(2, 0, optimistic=True) == pytest.approx(small.verify_time(8, 0) / 4, rel=0.02)
    # nothing measured: the prior curve
    assert CostModel(prior_verify_s=0.01).verify_time(4) == pytest.approx(0.02)


def test_exploration_is_periodic_and_stops_once_every_size_is_measured():
    model = fed("gpu", sizes=[1, 2, 3, 4])
    flags = [model.exploring(max_tokens=16) for _ in range(24)]
    assert flags == [(i + 1) % model.explore_every == 0 for i in range(24)]
    for n in range(5, 17):
        model.observe_verify(n, 100, curve_seconds("gpu", n))
        model.observe_verify(n, 100, curve_seconds("gpu", n))
    assert not any(model.exploring(max_tokens=16) for _ in range(24))
    assert any(model.exploring(max_tokens=64) for _ in range(24))  # 17-64 still unmeasured


def test_a_stale_size_is_explored_again():
    model = CostModel(stale_after=20)
    for _ in range(3):
        for n in (1, 2):
            model.observe_verify(n, 0, 0.02)
    assert not any(model.exploring(max_tokens=2) for _ in range(16))
    for _ in range(30):  # only 1-token steps for a while: the 2-token measurement ages
        model.observe_verify(1, 0, 0.02)
    assert any(model.exploring(max_tokens=2) for _ in range(16))


def test_cost_model_registry_and_summary():
    CostModel.registry.clear()
    target = SimpleNamespace(
        config=SimpleNamespace(_name_or_path="org/model"), device=torch.device("cpu"), dtype=torch.bfloat16
    )
    key = CostModel.key_of(target)
    assert key == ("org/model", "SimpleNamespace", "cpu", "torch.bfloat16")
    first = CostModel.for_key(key)
    first.observe_verify(3, 10, 0.03)
    first.observe_draft(4, 0.004)
    assert CostModel.for_key(key) is first  # a second generate call starts from what the first one learned
    assert CostModel.for_key(key + ("other",)) is not first
    summary = first.summary()
    assert summary["verify"]["3-4"]["count"] == 1 and summary["verify"]["3-4"]["seconds"] == pytest.approx(0.03)
    assert summary["draft"]["3-4"]["mean_tokens"] == 4 and summary["verify_observations"] == 1
    CostModel.registry.clear()


def test_cost_model_ignores_prefills_and_broken_timings():
    model = CostModel(max_tokens=64)
    model.observe_verify(500, 0, 3.0)  # a prefill
    model.observe_verify(4, 0, float("nan"))
    model.observe_verify(4, 0, -1.0)
    assert model.summary()["verify_observations"] == 0
    with pytest.raises(ValueError, match="forget"):
        CostModel(forget=1.0)


# ---------------------------------------------------------------------- acceptance models


def test_acceptance_model_trusts_the_drafter_without_data():
    model = AcceptanceModel()
    q = torch.tensor([0.05, 0.3, 0.5, 0.72, 0.95])
    assert model.predict(q, torch.ones(5, dtype=torch.long)) == pytest.approx(q.tolist())
    assert model.predict([0.5], [7]) == pytest.approx([0.5])  # any depth, lists accepted


def _drafter_events(rng, n, truth, depth_range=(1, 4)):
    q = torch.rand(n, generator=rng, dtype=torch.float64)
    depth = torch.randint(depth_range[0], depth_range[1] + 1, (n,), generator=rng)
    accepted = torch.rand(n, generator=rng, dtype=torch.float64) < truth(q, depth)
    return q, depth, accepted


def test_an_over_confident_drafter_gets_calibrated():
    rng = torch.Generator().manual_seed(0)
    model = AcceptanceModel()
    for _ in range(300):  # 300 cycles of 12 judged nodes
        model.observe(*_drafter_events(rng, 12, lambda q, d: q / 2))
    q = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    for depth in (1, 3):
        error = (torch.tensor(model.predict(q, [depth] * len(q))) - q / 2).abs()
        assert float(error.mean()) < 0.04 and float(error.max()) < 0.12, error  # uncalibrated: up to 0.47
    # the pooled ratio alone already corrects every cell, including cells that saw little data
    assert model.cells.ratio == pytest.approx(0.5, abs=0.05)


def test_calibration_learns_a_depth_dependence():
    rng = torch.Generator().manual_seed(1)
    model = AcceptanceModel()
    truth = lambda q, d: torch.where(d == 1, q, q * 0.4)  # noqa: E731
    for _ in range(400):
        model.observe(*_drafter_events(rng, 12, truth, depth_range=(1, 2)))
    q = torch.full((3,), 0.8, dtype=torch.float64)
    (shallow,), (deep,) = model.predict(q[:1], [1]), model.predict(q[:1], [2])
    assert shallow == pytest.approx(0.8, abs=0.08) and deep == pytest.approx(0.32, abs=0.08)


def test_an_always_wrong_drafter_is_distrusted_within_a_few_cycles():
    rng = torch.Generator().manual_seed(2)
    model = AcceptanceModel()
    for _ in range(5):  # 5 cycles of 8 judged nodes, every one rejected
        q = 0.5 + 0.5 * torch.rand(8, generator=rng, dtype=torch.float64)
        model.observe(q, torch.ones(8, dtype=torch.long), torch.zeros(8, dtype=torch.bool))
    assert max(model.predict(torch.tensor([0.6, 0.8, 0.99]), [1, 1, 1])) < 0.15


def test_acceptance_model_handles_empty_and_list_input():
    model = AcceptanceModel()
    model.observe([], [], [])
    model.observe([0.9, 0.9], [1, 1], [False, False])
    assert model.predict([0.9], [1])[0] < 0.9


def test_copy_acceptance_prior_shape_and_learning():
    model = CopyAcceptanceModel()
    (base,) = model.predict([1], [1], [1.0])
    assert base == pytest.approx(0.5 * (0.5 + 0.5 * 5 / 6))  # m = 1, i = 1, the top agreement bin's center
    assert model.predict([16], [1], [1.0])[0] > base  # a longer match is more trustworthy
    assert model.predict([1], [10], [1.0])[0] < base  # a later position less
    assert model.predict([1], [1], [0.2])[0] < base  # fewer occurrences agreeing less
    rng = torch.Generator().manual_seed(3)
    for _ in range(200):  # an agent log: long copies, accepted 90% of the time
        m = torch.randint(9, 40, (16,), generator=rng)
        i = torch.randint(1, 40, (16,), generator=rng)
        model.observe(m, i, torch.ones(16), torch.rand(16, generator=rng) < 0.9)
    predicted = model.predict(torch.tensor([12, 20, 30]), torch.tensor([1, 12, 35]), torch.ones(3))
    assert predicted == pytest.approx([0.9] * 3, abs=0.06)
    # a cell without data follows the pooled calibration up (the prior was too shy here) but never past the cap
    (unseen,) = model.predict([2], [1], [1.0])
    assert model.prior[(1 * len(model.prior) // 6) + 2] < unseen <= 0.95  # cell (m {2}, i {1}, top agreement)


def _random_tree(rng, n):
    parents = [0] + [rng.randrange(0, i + 1) for i in range(1, n)]  # node i's parent is the root or an earlier node
    depths = []
    for p in parents:
        depths.append(1 if p == 0 else depths[p - 1] + 1)
    return torch.tensor(parents), torch.tensor(depths)


def test_path_values_events_and_coverage_agree_with_a_walk():
    rng = random.Random(4)
    for _ in range(50):
        n = rng.randrange(1, 12)
        parents, depths = _random_tree(rng, n)
        conditional = torch.rand(n, dtype=torch.float64)
        values = path_values(conditional, parents)
        for i in range(n):
            product, node = 1.0, i + 1
            while node:
                product *= float(conditional[node - 1])
                node = int(parents[node - 1])
            assert float(values[i]) == pytest.approx(product)
            if parents[i]:
                assert values[i] <= values[parents[i] - 1]
        # an accepted path: root -> a random walk down the tree
        path, node = [], 0
        while True:
            children = [i + 1 for i in range(n) if int(parents[i]) == node]
            if not children or rng.random() < 0.3:
                break
            node = rng.choice(children)
            path.append(node)
        judged, accepted = acceptance_events(parents, path)
        on = {0, *path}
        assert judged == [i for i in range(n) if int(parents[i]) in on]
        assert accepted == [i + 1 in path for i in judged]
        depth, covered = coverage_events(parents, path)
        walk = [0] + path
        expected = [(j + 1, j < len(path)) for j, node in enumerate(walk) if node in set(parents.tolist())]
        assert list(zip(depth, covered)) == expected


def test_coverage_is_learned_per_depth():
    model = AcceptanceModel()
    assert model.coverage(1) == pytest.approx(0.5)
    for step in range(100):
        model.observe_coverage([1, 2], [step % 5 != 0, step % 5 == 0])  # depth 1 covered 80%, depth 2 20%
    assert model.coverage(1) == pytest.approx(0.8, abs=0.05) and model.coverage(2) == pytest.approx(0.2, abs=0.05)


# ---------------------------------------------------------------------- planner


def test_plan_tree_is_the_best_ancestor_closed_set():
    """Brute force over every ancestor-closed subset of small random trees and random measured curves."""
    rng = random.Random(5)
    for trial in range(40):
        n = rng.randrange(1, 9)
        parents, _ = _random_tree(rng, n)
        values = path_values(torch.rand(n, dtype=torch.float64), parents)
        model = CostModel()
        level = 0.01
        for size in range(1, 10):
            level += rng.uniform(0, 0.01)
            for _ in range(2):
                model.observe_verify(size, 0, level)
        draft = rng.uniform(0, 0.02)
        plan = plan_tree(values, parents, model, 0, draft)
        best = 0.0
        for mask in itertools.product([False, True], repeat=n):
            if all(not mask[i] or parents[i] == 0 or mask[parents[i] - 1] for i in range(n)):
                kept = [i for i in range(n) if mask[i]]
                rate = (1 + sum(float(values[i]) for i in kept)) / (draft + model.verify_time(len(kept) + 1, 0))
                best = max(best, rate)
        assert plan.rate == pytest.approx(best), trial
        kept = set(plan.keep)
        assert all(parents[i] == 0 or int(parents[i]) - 1 in kept for i in kept)  # ancestor-closed
        assert plan.keep == sorted(kept) and plan.num_nodes == len(kept)
        # the re-indexed parents point at the same nodes
        for j, i in enumerate(plan.keep):
            p = plan.parents[j]
            assert (p == 0 and parents[i] == 0) or plan.keep[p - 1] == int(parents[i]) - 1


def test_plan_tree_keeps_parents_ahead_of_equal_children():
    parents = torch.tensor([0, 1, 2, 0])
    values = torch.tensor([0.9, 0.9, 0.9, 0.1], dtype=torch.float64)  # children as sure as their parents
    plan = plan_tree(values, parents, fed("gpu"), 0, 0.001, max_nodes=2)
    assert plan.keep == [0, 1] and plan.parents == [0, 1]


def _typical_tree():
    """grow_tree's 3x4 shape with a decent drafter: values of 4 + 16 + 16 nodes."""
    parents, values = [], []
    for i, v in enumerate((0.7, 0.15, 0.06, 0.03)):
        parents.append(0)
        values.append(v)
    for p in range(4):
        for v in (0.75, 0.1, 0.05, 0.02):
            parents.append(p + 1)
            values.append(values[p] * v)
    for p in range(4, 20):
        for v in (0.7, 0.1, 0.05, 0.02):
            if len(parents) < 36:
                parents.append(p + 1)
                values.append(values[p] * v)
    return torch.tensor(values, dtype=torch.float64), torch.tensor(parents)


def test_plan_size_follows_the_measured_curve():
    """A steep curve drives the plan to a short draft or a plain step, a flat one to a large tree."""
    values, parents = _typical_tree()
    sizes = {}
    for curve in CURVES:
        model = fed(curve)
        plan = plan_tree(values, parents, model, 100, 3 * 0.003)
        sizes[curve] = plan.num_nodes
        assert plan.rate >= plan.expected_tokens / plan.seconds - 1e-9
    assert sizes["linear"] <= 1  # each verified position costs a whole forward: at most the surest node ...
    linear_plan = plan_tree(values, parents, fed("linear"), 100, 3 * 0.003)
    assert linear_plan.rate < linear_plan.plain_rate  # ... and not worth running the drafter for (DraftGate)
    assert 1 <= sizes["fp32"] <= 6
    assert sizes["fp32"] <= sizes["bf16"] <= sizes["gpu"]
    assert sizes["gpu"] >= 20
    # drafting pays on the flat curve, not on the linear one
    gpu, linear = fed("gpu"), fed("linear")
    assert expected_rate(2.0, 10, 0.01, gpu, 100) > expected_rate_without_draft(gpu, 100)
    assert expected_rate(0.5, 10, 0.01, linear, 100) < expected_rate_without_draft(linear, 100)


def test_should_grow_follows_the_curve_and_the_coverage():
    values, parents = _typical_tree()
    depth_one = values[:4]
    for curve, expect in (("gpu", True), ("linear", False)):
        model = fed(curve)
        plan = plan_tree(depth_one, parents[:4], model, 100, 0.003)
        width = should_grow(depth_one, plan, model, 100, 0.003, child_acceptance=0.8)
        assert (width > 0) is expect, curve
        assert width <= 4
    model = fed("gpu")
    plan = plan_tree(depth_one, parents[:4], model, 100, 0.003)
    assert should_grow(depth_one, plan, model, 100, 0.003, child_acceptance=0.0) == 0  # a depth that adds nothing
    assert should_grow([], plan, model, 100, 0.003, child_acceptance=0.9) == 0
    assert should_grow(depth_one, plan, model, 100, 0.003, child_acceptance=0.9, max_width=1) in (0, 1)


def test_should_grow_matches_its_formula():
    """The width against the module docstring's formula, on random frontiers (inside and outside the plan)."""
    rng = random.Random(9)
    for curve in ("fp32", "bf16", "gpu"):
        model = fed(curve)
        for _ in range(30):
            n = rng.randrange(1, 10)
            parents, _ = _random_tree(rng, n)
            values = path_values([rng.random() for _ in range(n)], parents)
            draft = rng.uniform(0.001, 0.02)
            plan = plan_tree(values, parents, model, 100, draft)
            frontier = sorted((rng.choice(values) * rng.random() for _ in range(rng.randrange(1, 6))), reverse=True)
            a = rng.random()
            best, best_rate = 0, plan.rate
            for w in range(1, len(frontier) + 1):
                gain = sum(a * f + (f if f < plan.cut else 0.0) for f in frontier[:w])
                added = sum(2 if f < plan.cut else 1 for f in frontier[:w])
                rate = (plan.expected_tokens + gain) / (
                    draft + model.draft_time(w) + model.verify_time(plan.num_nodes + 1 + added, 100)
                )
                if rate > best_rate:
                    best, best_rate = w, rate
            assert should_grow(frontier[::-1], plan, model, 100, draft, child_acceptance=a) == best


def test_draft_gate_backs_off_and_resumes():
    model = fed("bf16")
    values, parents = _typical_tree()
    winning = plan_tree(values, parents, model, 100, 0.009)
    losing = plan_tree(values * 0.01, parents, model, 100, 0.05)
    assert winning.rate > winning.plain_rate and losing.rate < losing.plain_rate
    gate = DraftGate(first_retry=2, max_retry=8)
    assert gate.should_draft()
    gate.update(losing)  # drafting lost: plain steps, then a retry after 2 of them
    assert [gate.should_draft() for _ in range(3)] == [False, False, True]
    gate.update(losing)  # the retry lost too: the wait doubles (4, then 8, capped)
    assert [gate.should_draft() for _ in range(5)] == [False] * 4 + [True]
    gate.update(losing)
    assert [gate.should_draft() for _ in range(9)] == [False] * 8 + [True]
    gate.update(losing)
    assert [gate.should_draft() for _ in range(9)] == [False] * 8 + [True]
    gate.update(winning)  # the drafter is right again: draft every cycle, and the wait starts over
    assert all(gate.should_draft() for _ in range(5))
    gate.update(losing)
    assert [gate.should_draft() for _ in range(3)] == [False, False, True]


def test_an_exploring_plan_reports_measured_figures():
    model = fed("gpu", sizes=[1, 2, 4])
    values, parents = _typical_tree()
    plan = plan_tree(values, parents, model, 100, 0.009, explore=True)
    assert plan.num_nodes > 3 and not model.measured(plan.num_nodes + 1) and model.measured(4)
    assert plan.seconds == pytest.approx(0.009 + model.verify_time(plan.num_nodes + 1, 100))
    assert plan.plain_rate == pytest.approx(1 / model.verify_time(1, 100))


def test_select_nodes_reindexes_like_grow_tree():
    parents = torch.tensor([0, 0, 1, 2, 3, 3])
    assert select_nodes(torch.tensor([0, 2, 4, 5]), parents) == [0, 1, 2, 2]


def _simulate(curve, truth, cycles, seed=0):
    """Cycles of a drafter (3x4 tree, true acceptance `truth(q)` of a node given its parent) against a target whose
    verification costs `curve`, planned by the models as they learn. Returns [(drafted, nodes verified)]."""
    gen = torch.Generator().manual_seed(seed)
    costs, acceptance, gate = CostModel(), AcceptanceModel(), DraftGate()
    log = []
    context = 200
    parents = torch.tensor(
        [0] * 4 + [p + 1 for p in range(4) for _ in range(4)] + [5] * 4 + [6] * 4 + [9] * 4 + [13] * 4
    )
    depths = torch.tensor([1] * 4 + [2] * 16 + [3] * 16)
    children = [[i for i in range(parents.numel()) if int(parents[i]) == node] for node in range(parents.numel() + 1)]
    draft_forward_s = 0.2 * ONE_TOKEN_S
    for _ in range(cycles):
        if not gate.should_draft():  # a plain step: no drafter forward, one verified position
            costs.observe_verify(1, context, curve_seconds(curve, 1, context, 1e-6))
            log.append((False, 0))
            context += 1
            continue
        # each node's 4 children share a Dirichlet draw: the drafter's top-4 probabilities at that node
        q = torch.distributions.Dirichlet(torch.ones(5)).sample((9,)).sort(-1, descending=True).values[:, :4]
        q = q.flatten()[: parents.numel()].double()
        for _ in range(3):
            costs.observe_draft(4, draft_forward_s)
        values = path_values(acceptance.predict(q, depths), parents)
        plan = plan_tree(values, parents, costs, context, 3 * draft_forward_s, explore=costs.exploring(37))
        gate.update(plan)
        log.append((True, plan.num_nodes))
        costs.observe_verify(plan.num_nodes + 1, context, curve_seconds(curve, plan.num_nodes + 1, context, 1e-6))
        # the target's walk over the kept nodes: at an accepted node one child (or none) is accepted
        kept = set(plan.keep)
        path, node = [], 0
        while children[node]:
            p = torch.tensor([float(truth(q[i])) for i in children[node]], dtype=torch.float64)
            pick = int((p.cumsum(0) < torch.rand((), generator=gen, dtype=torch.float64)).sum())
            if pick == len(children[node]) or children[node][pick] not in kept:
                break
            node = children[node][pick] + 1
            path.append(node)
        context += len(path) + 1
        verified = parents[plan.keep]  # the verified tree (re-indexed parents), its walk's path
        position = {i + 1: j + 1 for j, i in enumerate(plan.keep)}
        judged, accepted = acceptance_events(plan.parents, [position[node] for node in path])
        nodes = [plan.keep[j] for j in judged]
        assert len(verified) == plan.num_nodes
        acceptance.observe([float(q[i]) for i in nodes], [int(depths[i]) for i in nodes], accepted)
    return log


def test_simulated_cycles_pick_the_shape_the_machine_rewards():
    torch.manual_seed(0)
    honest = lambda q: q  # noqa: E731 - a calibrated drafter
    flat = _simulate("gpu", honest, 120)[-40:]
    steep = _simulate("linear", honest, 120)[-40:]
    assert all(drafted for drafted, _ in flat) and sum(n for _, n in flat) / 40 >= 12  # wide trees on a flat curve
    # every position costs a whole forward: plain steps, a drafted retry now and then, never more than one node
    assert sum(drafted for drafted, _ in steep) <= 2 and max(n for _, n in steep) <= 1


def test_simulated_always_wrong_drafter_falls_back_to_plain_steps():
    torch.manual_seed(0)
    wrong = lambda q: 0.0  # noqa: E731
    log = _simulate("bf16", wrong, 130)
    assert log[0][0] and log[0][1] > 0  # the first cycle trusts the drafter
    late = [drafted for drafted, _ in log[5:]]
    # after a few cycles only the backed-off retries draft (after 8, 16, 32, 64 plain steps)
    assert sum(late) <= 4, log


def test_exploration_tries_an_unmeasured_size_within_a_bounded_number_of_cycles():
    """Measured only up to 4 tokens on a flat (GPU) machine: the conservative prior keeps plans small until an
    exploring cycle prices larger sizes at their lowest possible cost; then the measurement takes over."""
    values, parents = _typical_tree()
    model = CostModel(explore_every=5)
    for _ in range(2):
        for n in (1, 2, 3, 4):
            model.observe_verify(n, 100, curve_seconds("gpu", n))
    cold = plan_tree(values, parents, model, 100, 0.009)
    assert cold.num_nodes <= 3  # without exploring, the prior makes large trees look expensive
    tried = None
    for cycle in range(model.explore_every):
        plan = plan_tree(values, parents, model, 100, 0.009, explore=model.exploring(37))
        model.observe_verify(plan.num_nodes + 1, 100, curve_seconds("gpu", plan.num_nodes + 1))
        if plan.num_nodes > 3:
            tried = cycle
            break
    assert tried is not None and tried < model.explore_every
    model.observe_verify(plan.num_nodes + 1, 100, curve_seconds("gpu", plan.num_nodes + 1))
    assert plan_tree(values, parents, model, 100, 0.009).num_nodes > cold.num_nodes  # measured: now picked plainly


# ---------------------------------------------------------------------- context index


def _brute_occurrences(ids, max_match):
    t = len(ids)
    found = []
    for e in range(t - 1):
        length = 0
        while length < max_match and e - length >= 0 and ids[e - length] == ids[t - 1 - length]:
            length += 1
        if length:
            found.append((length, e))
    return sorted(found, reverse=True)  # longest first, then most recent


def _brute_continuations(ids, max_tokens, max_branches, max_occurrences, min_match, max_match):
    ranked = [(m, e) for m, e in _brute_occurrences(ids, max_match) if m >= min_match][:max_occurrences]
    conts = [ids[e + 1 : e + 1 + max_tokens] for _, e in ranked]
    out, chosen = [], []
    for k, cont in enumerate(conts):
        if any(conts[j][: len(cont)] == cont for j in chosen):
            continue
        chosen.append(k)
        support = [sum(1 for other in conts if other[: i + 1] == cont[: i + 1]) for i in range(len(cont))]
        out.append((cont, support, ranked[k][0]))
        if len(chosen) == max_branches:
            break
    return out


def test_context_index_agrees_with_brute_force_on_random_sequences():
    rng = random.Random(6)
    for trial in range(150):
        vocab = rng.randrange(2, 6)
        length = rng.randrange(1, 90)
        ids = [rng.randrange(vocab) for _ in range(length)]
        max_match = rng.choice([3, 8, 64])
        index = ContextIndex(max_match=max_match)
        cut = 0
        while cut < length:  # extended in random chunks, as cycles accept tokens
            step = rng.randrange(1, 6)
            index.extend(ids[cut : cut + step])
            cut += step
        occurrences = _brute_occurrences(ids, max_match)
        assert index.longest_match(max_candidates=10**6) == (occurrences[0] if occurrences else (0, -1)), trial
        settings = dict(
            max_tokens=rng.randrange(1, 40),
            max_branches=rng.randrange(1, 5),
            max_occurrences=rng.randrange(1, 10),
            min_match=rng.randrange(1, 4),
        )
        got = index.continuations(**settings, max_candidates=10**6)
        want = _brute_continuations(ids, **settings, max_match=max_match)
        assert [(c.tokens, c.support, c.match_length) for c in got] == want, (trial, settings)
        for c in got:
            assert ids[c.start : c.start + len(c.tokens)] == c.tokens
            previous = [c.occurrences] + c.support[:-1]
            assert c.agreement == pytest.approx([s / p for s, p in zip(c.support, previous)])


def test_context_index_finds_long_matches_and_several_continuations():
    """An agent log: a tool's output block seen twice before, with two different endings; the copy runs for the
    whole block (far beyond 8 tokens) and both endings are proposed, weighted by how often each occurred."""
    block = list(range(100, 140))  # 40 tokens
    log = [1, 2] + block + [7, 7, 7] + [3] + block + [8, 8] + [4] + block + [7, 7, 7] + [5] + block[:20]
    index = ContextIndex(log)
    length, end = index.longest_match()
    assert (length, end) == (20, len(log) - 1 - 20 - 1 - 3 - 20)  # the latest block: preceded by 4, not by 5
    conts = index.continuations(max_tokens=64, max_branches=4)
    first = conts[0]
    assert first.tokens[:20] == block[20:] and len(first.tokens) > 20  # the rest of the block, and on
    endings = {tuple(c.tokens[20:23]) for c in conts}
    assert endings == {(7, 7, 7), (8, 8, 4)}
    # the 20 tokens that finish the block are supported by all three occurrences, the ending 7 7 7 by two of them
    assert first.support[:24] == [3] * 20 + [2] * 3 + [1] and first.occurrences == 3
    assert first.agreement[20] == pytest.approx(2 / 3)


def test_context_index_extend_is_incremental():
    rng = random.Random(7)
    ids = [rng.randrange(50) for _ in range(400)]
    whole, pieces = ContextIndex(ids), ContextIndex()
    for start in range(0, 400, 7):
        pieces.extend(torch.tensor(ids[start : start + 7]))
    assert pieces.positions == whole.positions and pieces.ids == whole.ids
    # one entry per size per token: extending costs O(new tokens), not a rescan
    assert sum(len(v) for v in whole.positions[4].values()) == 400 - 3
    assert len(ContextIndex([5])) == 1 and ContextIndex([5]).continuations(4) == []


def test_add_copy_branches_matches_add_copy_branch_for_one_copy():
    rng = random.Random(8)
    for _ in range(50):
        n = rng.randrange(0, 10)
        parents, depths = _random_tree(rng, n) if n else (torch.zeros(0, dtype=torch.long),) * 2
        tokens = []  # siblings carry distinct tokens, as grow_tree's top-k children do
        for i in range(n):
            taken = {tokens[j] for j in range(i) if parents[j] == parents[i]}
            tokens.append(rng.choice([t for t in range(12) if t not in taken]))
        tokens = torch.tensor(tokens, dtype=torch.long)
        copy = torch.tensor([rng.randrange(3) for _ in range(rng.randrange(1, 12))])
        cont = SimpleNamespace(tokens=copy, agreement=torch.ones(copy.numel()), match_length=3)
        merged = add_copy_branches(tokens, parents, depths, [cont])
        t, p, d = tokens.tolist(), list(map(int, parents)), list(map(int, depths))
        added = add_copy_branch(t, p, d, copy.tolist())  # (in place, on host lists)
        assert merged.tokens == t and merged.parents == p
        assert merged.depths == d and merged.added == added
        # every copied token sits on the chain that spells the copy, with its position and match length
        node = 0
        for i, token in enumerate(copy.tolist()):
            node = next(
                j + 1
                for j in range(len(merged.tokens))
                if int(merged.parents[j]) == node and int(merged.tokens[j]) == token
            )
            assert int(merged.copy_position[node - 1]) == i + 1 and int(merged.copy_match[node - 1]) == 3
        assert merged.drafted == n and len(merged.tokens) == n + added


def test_add_copy_branches_shares_prefixes_between_copies():
    index = ContextIndex([9, 1, 2, 3, 9, 1, 2, 4, 9, 1])
    conts = index.continuations(max_tokens=4)
    assert [c.tokens[:2] for c in conts] == [[2, 4], [2, 3]]
    merged = add_copy_branches(torch.tensor([2]), torch.tensor([0]), torch.tensor([1]), conts)
    # the drafter's node 2 is shared by both copies; they part after it
    assert merged.tokens[:3] == [2, 4, 9] and merged.parents[:3] == [0, 1, 2]
    assert merged.copy_match[0] == conts[0].match_length and merged.drafted == 1
    second = merged.tokens.index(3)
    assert merged.parents[second] == 1 and merged.copy_agreement[second] == pytest.approx(0.5)
