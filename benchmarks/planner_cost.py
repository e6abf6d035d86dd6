"""
Host cost of the measured drafting policy's model work per cycle (issue 34): what the cost model, the acceptance
models, the planner and the context index add to a cycle, in microseconds per call.

    OMP_NUM_THREADS=1 python benchmarks/planner_cost.py [--calls 1000] [--json out.json]

Realistic sizes: a 3-depth tree of 36 nodes (4 + 16 + 16) of which ~10 are judged, two growth decisions, one
verification and four drafter forwards observed; a 4000-token repetitive context (an agent log) extended by 3 tokens
a call, 4 copy branches of up to 32 tokens merged into the tree. Each step is timed over `--calls` calls after a
warm-up, best of 5 rounds, in wall and in thread CPU time (the machine is shared: CPU time is what the code
costs, wall time adds the waits for a core).
"""

import argparse
import json
import random
import time

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
from hf_eagle31.modeling.draft_planner import plan_tree, should_grow


def tree():
    parents = torch.tensor(
        [0] * 4 + [p + 1 for p in range(4) for _ in range(4)] + [5] * 4 + [6] * 4 + [9] * 4 + [13] * 4
    )
    depths = torch.tensor([1] * 4 + [2] * 16 + [3] * 16)
    q = torch.distributions.Dirichlet(torch.ones(5)).sample((9,)).sort(-1, descending=True).values[:, :4].flatten()
    tokens = torch.randint(0, 49152, (36,))
    return tokens, parents, depths, q[:36].double()


def agent_log(length, seed=0):
    """A repetitive token stream: blocks of a tool's output recur with small edits."""
    rng = random.Random(seed)
    blocks = [[rng.randrange(49152) for _ in range(rng.randrange(20, 80))] for _ in range(12)]
    ids = []
    while len(ids) < length:
        block = list(rng.choice(blocks))
        if rng.random() < 0.5:
            block[rng.randrange(len(block))] = rng.randrange(49152)
        ids += block + [rng.randrange(49152) for _ in range(rng.randrange(0, 10))]
    return ids[:length]


def timed(fn, calls):
    """(wall, thread CPU) microseconds per call, each the best of 5 rounds: on a shared machine the CPU time is what
    the code costs, the wall time adds the waits for a core."""
    fn()
    wall = cpu = float("inf")
    for _ in range(5):
        start, start_cpu = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            fn()
        wall = min(wall, (time.perf_counter() - start) / calls)
        cpu = min(cpu, (time.thread_time() - start_cpu) / calls)
    return wall * 1e6, cpu * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tokens, parents, depths, q = tree()
    costs, acceptance, copy_model = CostModel(), AcceptanceModel(), CopyAcceptanceModel()
    for n in range(1, 40):
        for _ in range(2):
            costs.observe_verify(n, 500, 0.02 * (1 + 0.05 * n))
    for w in (1, 4, 8):
        costs.observe_draft(w, 0.003)
    log = agent_log(4000 + 3 * (5 * args.calls + 10))  # the context grows by 3 tokens a call from 4000
    index = ContextIndex(log[:4000])
    grown = iter(range(4000, len(log), 3))
    values = path_values(acceptance.predict(q, depths), parents)
    plan = plan_tree(values, parents, costs, 500, 0.01)
    path = [1, 5, 21]
    conts = index.continuations(max_tokens=32)
    stream = iter(range(10**9))

    def observe_costs():  # one verification and four drafter forwards: every cached curve is rebuilt after
        i = next(stream)
        costs.observe_verify(11 + i % 3, 500 + i % 100, 0.021)
        for w in (3, 4, 4, 4):
            costs.observe_draft(w, 0.003)

    def plan_after_observe():
        observe_costs()
        return plan_tree(values, parents, costs, 500, 0.01, explore=costs.exploring(37))

    q_list, depth_list = q.tolist(), depths.tolist()

    def observe_acceptance():
        judged, accepted = acceptance_events(parents_list, path)
        acceptance.observe([q_list[i] for i in judged], [depth_list[i] for i in judged], accepted)
        acceptance.observe_coverage(*coverage_events(parents_list, path))

    def index_cycle():
        start = next(grown)
        index.extend(log[start : start + 3])
        return index.continuations(max_tokens=32)

    merged = add_copy_branches(tokens, parents, depths, conts)
    parents_list = parents.tolist()
    steps = {
        "CostModel.observe_verify + 4 observe_draft": observe_costs,
        "CostModel.verify_times(37) cached": lambda: costs.verify_times(37, 500),
        "plan_tree(36 nodes), curves rebuilt (after the observes)": plan_after_observe,
        "plan_tree(36 nodes), curves cached": lambda: plan_tree(values, parents, costs, 500, 0.01),
        "should_grow(4 frontier nodes)": lambda: should_grow(values[:4], plan, costs, 500, 0.01, child_acceptance=0.7),
        "AcceptanceModel.predict(36, from tensors)": lambda: acceptance.predict(q, depths),
        "path_values(36, from tensors)": lambda: path_values(q, parents),
        "AcceptanceModel.observe(events of one walk) + coverage": observe_acceptance,
        "ContextIndex.extend(3) + continuations(32) on 4000 tokens": index_cycle,
        f"add_copy_branches({len(conts)} branches, {sum(len(c.tokens) for c in conts)} tokens)": lambda: (
            add_copy_branches(tokens, parents, depths, conts)
        ),
        f"CopyAcceptanceModel.predict(all {len(merged.tokens)} nodes of the merged tree)": lambda: copy_model.predict(
            merged.copy_match, merged.copy_position, merged.copy_agreement
        ),
    }
    results = {name: timed(fn, args.calls) for name, fn in steps.items()}
    # one cycle: observe costs, plan (curves rebuilt), two growth decisions, predict + path values twice (drafter
    # depths), index + merge + copy predict, acceptance observe
    per_cycle = {  # how often a cycle uses each step: predict and path values once per drafted depth (2 of them)
        "plan_tree(36 nodes), curves rebuilt (after the observes)": 1,
        "should_grow(4 frontier nodes)": 2,
        "AcceptanceModel.predict(36, from tensors)": 2,
        "path_values(36, from tensors)": 2,
        "AcceptanceModel.observe(events of one walk) + coverage": 1,
        "ContextIndex.extend(3) + continuations(32) on 4000 tokens": 1,
        next(k for k in results if k.startswith("add_copy_branches")): 1,
        next(k for k in results if k.startswith("CopyAcceptanceModel")): 1,
    }
    cycle = tuple(sum(results[name][i] * times for name, times in per_cycle.items()) for i in (0, 1))
    results["one cycle (sum of the above as a cycle uses them)"] = cycle
    width = max(len(k) for k in results)
    print(f"{'':<{width}}  {'wall us':>8}  {'cpu us':>8}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<{width}}  {wall:8.1f}  {cpu:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "calls": args.calls, "microseconds_wall_cpu": results}, f, indent=2)


if __name__ == "__main__":
    main()
