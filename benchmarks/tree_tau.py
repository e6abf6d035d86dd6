"""tau and nodes verified per cycle of draft trees vs the constant chain (K = 3) on MT-Bench first turns, greedy,
with the shipped EAGLE-3.1 drafter. tau counts forwards, not seconds, so it does not depend on machine load.

    OMP_NUM_THREADS=1 python benchmarks/tree_tau.py --num-prompts 8 --max-new-tokens 64 --dtype bfloat16
    OMP_NUM_THREADS=1 python benchmarks/tree_tau.py --num-prompts 4 --max-new-tokens 128 \
        --policies constant,tree+copy@3x4x10:0,tree+copy@3x4x10:0.1,tree+copy@3x4x10:0.3   # the growth gate
"""

import argparse

import torch
from transformers import AutoModel

from hf_eagle31.data.suites import render, standard_suite
from hf_eagle31.evaluation import drafting_policy
from hf_eagle31.loading import DEFAULT_DRAFTER
from hf_eagle31.modeling import SpeculationStats
from hf_eagle31.targets import load_target


POLICIES = ["constant", "tree@4x4x12", "tree", "tree@6x6x32", "tree+copy", "confidence+copy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated drafting policies")
    args = parser.parse_args()
    policies = args.policies.split(",")
    dtype = getattr(torch, args.dtype)
    target, tokenizer = load_target(dtype=dtype)
    drafter = AutoModel.from_pretrained(DEFAULT_DRAFTER, trust_remote_code=True, dtype=dtype).eval()
    prompts = standard_suite(num_per_source=args.num_prompts, source_names=("mtbench",))[: args.num_prompts]
    stats = {p: [] for p in policies}
    diverged = dict.fromkeys(policies, 0)  # bf16: a verification block may round differently from a 1-token step
    for prompt in prompts:
        ids = torch.tensor([render(tokenizer, prompt)])
        plain = target.generate(ids, max_new_tokens=args.max_new_tokens, do_sample=False)
        for policy in policies:
            options = drafting_policy(policy) | ({"num_assistant_tokens": 3} if policy == "constant" else {})
            out = target.generate(
                ids, max_new_tokens=args.max_new_tokens, do_sample=False, assistant_model=drafter, **options
            )
            diverged[policy] += not torch.equal(out, plain)
            stats[policy].append(drafter.last_speculation_stats)
        print(prompt.id, {p: round(stats[p][-1].tau, 2) for p in policies}, flush=True)
    base = SpeculationStats.pooled(stats["constant"]).tau if "constant" in stats else None
    print(f"\n{len(prompts)} MT-Bench prompts, {args.max_new_tokens} new tokens, {args.dtype}, greedy")
    print(f"outputs differing from plain greedy (per policy): {diverged}")
    print("| policy | tau | x constant K=3 | nodes verified / cycle | mean accepted path | drafter forwards / cycle |")
    print("|---|---|---|---|---|---|")
    for policy in policies:
        pooled = SpeculationStats.pooled(stats[policy])
        ratio = f"{pooled.tau / base:.2f}" if base else "-"
        accepted = sum(pooled.accepted) / max(pooled.cycles, 1)
        forwards = pooled.drafter_forwards / max(pooled.cycles, 1)
        cells = [f"{pooled.tau:.3f}", ratio, f"{pooled.drafted_per_cycle:.1f}", f"{accepted:.2f}", f"{forwards:.2f}"]
        print(f"| {policy} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
