# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Which draft to verify this cycle: the node set that maximises expected accepted tokens per second under the measured
costs (`cost_model.CostModel`) and the calibrated acceptance (`acceptance_model`).

The math. A cycle drafts nodes (a tree over the last verified token, the root) and verifies a set K of them in one
target forward of |K| + 1 positions. With v_i = P(node i accepted) (the product of calibrated conditional
acceptances along its path, `acceptance_model.path_values`), greedy acceptance walks one path, a node is accepted iff
its whole path is, so for an ancestor-closed K the accepted length is sum_{i in K} 1[i accepted] and
    E[tokens emitted] = 1 + sum_{i in K} v_i                              (the 1: the target's bonus token)
    seconds           = D + V(|K| + 1, c)                                 (D: drafter seconds of the cycle, c: context)
    rate(K)           = (1 + sum_{i in K} v_i) / (D + V(|K| + 1, c))      tokens per second
For a fixed size N the best ancestor-closed K is the N largest values (a child's value never exceeds its parent's,
and a stable sort keeps a parent, created first, ahead of an equal child), so the search is over N only:
    S_N = sum of the N largest v (S_0 = 0),   N* = argmax_{0 <= N <= n} (1 + S_N) / (D + V(N + 1, c))
(`plan_tree`: one sort, one cumsum, one vector of verify costs; N* = 0 is a plain step). Within one cycle D is
already spent, so it is the same for every N; keeping it in the ratio makes the choice the one that maximises the
cycle's rate, which with similar cycles is the long-run rate (Dinkelbach: maximise 1 + S_N - rho V with rho the rate).

Without any draft a step emits 1 token in V(1, c): `expected_rate_without_draft` = 1 / V(1, c), the bar every plan
must clear (the drafter's seconds are what a plain step saves). Within a drafted cycle N* = 0 is rare (D is spent,
so even a weak node may pay for its position); whether to run the drafter at all is the decision before the cycle
(`DraftGate`): draft while the last drafted cycle's plan beat a plain step (rate(N*) > 1 / V(1, c)); otherwise take
plain steps and retry a drafted cycle after `retry` plain steps, the wait doubling after each retry that still loses
(8, 16, ..., 64) and reset by one that wins, so a useless drafter costs at most ~1/64 of its cycle overhead and a
drafter that becomes right again (a code block after prose) is back within the current wait.

Growing one more depth (`should_grow`): feeding the w best frontier nodes (values f_1 >= ... >= f_w) costs one
drafter forward g(w) and, if each contributes its best child, w more verified positions; the best child of an
accepted node is accepted with probability a = `AcceptanceModel.coverage(depth)` (the chance the target's token is
among its drafted children). A frontier node outside the current plan (f_j below the plan's cut) must be verified
too, so it adds its own value and one more position:
    G_w = sum_{j<=w} (a f_j + [f_j < cut] f_j),   n_w = sum_{j<=w} (1 + [f_j < cut])
    grow to width w* = argmax_w (1 + S_N* + G_w) / (D + g(w) + V(N* + 1 + n_w, c))  if that beats rate(N*), else stop.

Shapes: node_values (n,) floats; parents (n,) indices into [root] + nodes (0 = root, i + 1 = node i), parents
before children; tensors or lists in, Python lists out (planning runs on the host over tens of nodes, where a list
costs less than a torch op's dispatch; benchmarks/planner_cost.py). Seconds and tokens per second. This file travels
with every Hub checkpoint (remote code): it imports the standard library only.
"""

import math
from itertools import accumulate
from typing import NamedTuple


def _as_list(x) -> list:
    return x.tolist() if hasattr(x, "tolist") else list(x)


class TreePlan(NamedTuple):
    """The chosen draft of one cycle. num_nodes N (0 = a plain step); keep (N,) indices of the kept nodes in
    creation order; parents (N,) their parents re-indexed into [root] + kept (None when none were given); cut the
    smallest kept value (inf when N = 0); expected_tokens 1 + sum of kept values; seconds D + V(N + 1, c); rate
    expected_tokens / seconds; plain_rate 1 / V(1, c) (a step without the drafter). seconds, rate and plain_rate
    use the measured estimate even on an exploring cycle (only the choice of N saw the optimistic prices)."""

    num_nodes: int
    keep: list
    parents: list | None
    cut: float
    expected_tokens: float
    seconds: float
    rate: float
    plain_rate: float


def plan_tree(
    node_values, parents, cost_model, context_length: int, draft_time_spent: float, *, explore: bool = False,
    max_nodes: int | None = None,
) -> TreePlan:
    """
    The ancestor-closed node set maximising (1 + sum of values) / (draft_time_spent + verify_time(N + 1)); see the
    module docstring. `explore` prices unmeasured sizes optimistically (pass `cost_model.exploring(...)`, once per
    cycle); `max_nodes` caps N (the room left before max_length).
    """
    values = [float(v) for v in _as_list(node_values)]
    cap = len(values) if max_nodes is None else max(0, min(int(max_nodes), len(values)))
    cap = min(cap, cost_model.max_tokens - 1)
    # descending by value, the earlier node first on ties (a parent before an equal child): sorted() is stable
    order = sorted(range(len(values)), key=values.__getitem__, reverse=True)[:cap]
    gains = list(accumulate((values[i] for i in order), initial=1.0))  # 1 + S_N, N = 0..cap
    seconds = [v + draft_time_spent for v in cost_model.verify_times(cap + 1, context_length, optimistic=explore)]
    rates = [g / t for g, t in zip(gains, seconds)]
    n = max(range(cap + 1), key=rates.__getitem__)  # the first maximum: the smaller draft on a tie
    keep = sorted(order[:n])
    kept_parents = None if parents is None else select_nodes(keep, parents)
    plain = 1.0 / cost_model.verify_time(1, context_length)  # the measured bar, also on an exploring cycle
    cut = values[order[n - 1]] if n else math.inf
    if explore:  # the plan's own figures are the measured estimate: what the DraftGate and a profile should see
        seconds[n] = draft_time_spent + cost_model.verify_time(n + 1, context_length)
        rates[n] = gains[n] / seconds[n]
    return TreePlan(n, keep, kept_parents, cut, gains[n], seconds[n], rates[n], plain)


def select_nodes(keep, parents) -> list:
    """(N,) the parents of the nodes at `keep` (sorted, ancestor-closed) re-indexed into [root] + kept nodes."""
    keep, parents = _as_list(keep), _as_list(parents)
    position = {0: 0}
    for j, i in enumerate(keep):
        position[i + 1] = j + 1
    return [position[parents[i]] for i in keep]


def should_grow(
    frontier_values, plan: TreePlan, cost_model, context_length: int, draft_time_spent: float, *,
    child_acceptance: float, explore: bool = False, max_width: int | None = None,
) -> int:
    """
    How many frontier nodes to feed for one more depth (0 = stop growing), from their values (any order), the plan of
    the nodes drafted so far (`plan_tree`) and `child_acceptance` (`AcceptanceModel.coverage(depth + 1)`); see the
    module docstring. `draft_time_spent` is the cycle's drafter seconds so far (the same D as the plan's).
    """
    f = sorted((float(v) for v in _as_list(frontier_values)), reverse=True)
    if max_width is not None:
        f = f[: max(0, int(max_width))]
    if not f:
        return 0
    gain, added, best, best_rate = 0.0, 0, 0, plan.rate
    verify = cost_model.verify_times(plan.num_nodes + 1 + 2 * len(f), context_length, optimistic=explore)
    for w, value in enumerate(f, start=1):
        outside = value < plan.cut  # not in the plan: it must be verified too
        gain += child_acceptance * value + (value if outside else 0.0)
        added += 2 if outside else 1
        seconds = draft_time_spent + cost_model.draft_time(w) + verify[plan.num_nodes + added]
        rate = (plan.expected_tokens + gain) / seconds
        if rate > best_rate:
            best, best_rate = w, rate
    return best


class DraftGate:
    """
    Whether to run the drafter this cycle (module docstring). Per cycle: `should_draft()`; after a drafted cycle,
    `update(plan)` with its `TreePlan`; after a plain step nothing. The caller keeps the target features of the plain
    steps, so the drafter's feed catches up in one forward when drafting resumes.
    """

    def __init__(self, first_retry: int = 8, max_retry: int = 64):
        self.first_retry, self.max_retry = first_retry, max_retry
        self.drafting, self.wait, self.skipped = True, first_retry, 0

    def should_draft(self) -> bool:
        if self.drafting:
            return True
        self.skipped += 1
        return self.skipped > self.wait

    def update(self, plan: TreePlan) -> None:
        wins = plan.rate > plan.plain_rate
        if not self.drafting and not wins:  # a retry that still loses: wait longer next time
            self.wait = min(2 * self.wait, self.max_retry)
        elif wins:
            self.wait = self.first_retry
        self.drafting, self.skipped = wins, 0


def expected_rate(expected_accepted: float, num_nodes: int, draft_seconds: float, cost_model, context_length: int,
                  explore: bool = False) -> float:
    """Tokens per second of a cycle that drafts for `draft_seconds` and verifies `num_nodes` nodes of which
    `expected_accepted` are accepted in expectation (e.g. the recent cycles' mean, to decide before drafting)."""
    verify = cost_model.verify_time(num_nodes + 1, context_length, optimistic=explore)
    return (1.0 + expected_accepted) / (draft_seconds + verify)


def expected_rate_without_draft(cost_model, context_length: int, explore: bool = False) -> float:
    """Tokens per second of a plain step (no drafter forward): 1 / verify_time(1, context_length)."""
    return 1.0 / cost_model.verify_time(1, context_length, optimistic=explore)
