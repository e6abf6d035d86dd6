"""tau and nodes verified per cycle of draft trees vs the constant chain (K = 3) on MT-Bench first turns, greedy,
with the shipped EAGLE-3.1 drafter. tau does not depend on machine load (it counts forwards, not seconds).

    OMP_NUM_THREADS=1 python examples/tree_tau.py [num_prompts] [max_new_tokens] [policy ...]
"""

import sys

import torch
from transformers import AutoModel

from hf_eagle31.evaluation import drafting_policy
from hf_eagle31.modeling import SpeculationStats
from hf_eagle31.suites import render, standard_suite
from hf_eagle31.targets import load_target

num_prompts = int(sys.argv[1]) if len(sys.argv) > 1 else 8
max_new = int(sys.argv[2]) if len(sys.argv) > 2 else 64
policies = sys.argv[3:] or ["constant", "tree@4x4x12", "tree", "tree@6x6x32", "tree+copy", "confidence+copy"]
import os
dtype = getattr(torch, os.environ.get("DTYPE", "bfloat16"))
target, tokenizer = load_target(dtype=dtype)
drafter = AutoModel.from_pretrained("hf_eagle31/drafters/smollm2-135m-instruct-eagle3.1", trust_remote_code=True,
                                    dtype=dtype).eval()
prompts = standard_suite(num_per_source=num_prompts, source_names=("mtbench",))[:num_prompts]
stats = {p: [] for p in policies}
diverged = {p: 0 for p in policies}
for prompt in prompts:
    ids = torch.tensor([render(tokenizer, prompt)])
    plain = target.generate(ids, max_new_tokens=max_new, do_sample=False)
    for policy in policies:
        options = drafting_policy(policy)
        if policy == "constant":
            options["num_assistant_tokens"] = 3
        out = target.generate(ids, max_new_tokens=max_new, do_sample=False, assistant_model=drafter, **options)
        n = min(out.shape[1], plain.shape[1])
        same = int((out[0, :n] == plain[0, :n]).cumprod(0).sum()) - ids.shape[1]
        if not torch.equal(out, plain):  # bf16: a verification block may round differently from a 1-token step (fp32: never seen)
            diverged[policy] += 1
            print(f"  {policy}: first {same} new tokens equal plain greedy, then differs")
        stats[policy].append(drafter.last_speculation_stats)
    print(prompt.id, {p: round(stats[p][-1].tau, 2) for p in policies}, flush=True)
base = SpeculationStats.pooled(stats["constant"]).tau if "constant" in stats else None
print(f"\n{len(prompts)} MT-Bench prompts, {max_new} new tokens, {dtype}, greedy; outputs differing from plain: {diverged}")
print("| policy | tau | x constant K=3 | nodes verified / cycle | mean accepted path |")
print("|---|---|---|---|---|")
for policy in policies:
    pooled = SpeculationStats.pooled(stats[policy])
    ratio = f"{pooled.tau / base:.2f}" if base else "-"
    accepted = sum(pooled.accepted) / max(pooled.cycles, 1)
    print(f"| {policy} | {pooled.tau:.3f} | {ratio} | {pooled.drafted_per_cycle:.1f} | {accepted:.2f} |")
