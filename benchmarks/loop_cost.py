"""
Host cost of one speculation cycle: milliseconds of Python / bookkeeping and host-device synchronisations per cycle,
measured with a target whose forward is nearly free (2 decoder layers, the fewest that give an EAGLE-3 drafter its 3
distinct hidden states; hidden size 16), so that what remains is the
loop (`hf_eagle31.evaluation.loop_cost`). Prints one row per policy, side by side in one process:

    OMP_NUM_THREADS=1 python benchmarks/loop_cost.py [--prompts 6] [--max-new-tokens 96] [--json out.json]

Tree policies get a second row with the growth gate decided on the device (`TreeCandidateGenerator.gate_on_host =
False`, what the generator does off the CPU). The drafter is random, so acceptance is low; a cycle's host cost
depends on the shapes drafted and verified, which the policy fixes (chains of K tokens, trees of N nodes).
"""

import argparse
import json

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_eagle31 import Eagle3Config, Eagle3Drafter
from hf_eagle31.evaluation.loop_cost import measure_loop_cost
from hf_eagle31.evaluation.policies import drafting_policy
from hf_eagle31.modeling import TreeCandidateGenerator


POLICIES = ("constant", "confidence", "confidence+copy", "tree", "tree+copy")


def tiny_target(vocab_size: int, seed: int = 0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config).eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    target = tiny_target(args.vocab_size)
    config = Eagle3Config.from_target(target.config, variant="eagle3.1")
    torch.manual_seed(1)
    drafter = Eagle3Drafter(config).load_target_embeddings(target).eval()
    rng = torch.Generator().manual_seed(2)
    # Repetitive prompts, so that the copy branch has matches to continue.
    prompts = [torch.randint(0, 24, (40,), generator=rng).tolist() * 2 for _ in range(args.prompts)]
    rows = {}
    for policy in args.policies.split(","):
        rows[policy] = measure_loop_cost(
            target, drafter, prompts, max_new_tokens=args.max_new_tokens, **drafting_policy(policy)
        )
        if policy.startswith("tree"):  # the accelerator default: the growth gate decided on the device
            TreeCandidateGenerator.gate_on_host = False
            try:
                rows[f"{policy}, gate on the device"] = measure_loop_cost(
                    target, drafter, prompts, max_new_tokens=args.max_new_tokens, **drafting_policy(policy)
                )
            finally:
                TreeCandidateGenerator.gate_on_host = None
    print(
        "| policy | host CPU ms / cycle | host wall ms / cycle | syncs / cycle | syncs in forwards / cycle | cycles |"
    )
    print("|---|---|---|---|---|---|")
    for policy, row in rows.items():
        print(
            f"| {policy} | {row['host_cpu_ms_per_cycle']:.3f} | {row['host_ms_per_cycle']:.3f} | "
            f"{row['syncs_per_cycle']:.2f} | {row['forward_syncs_per_cycle']:.2f} | {row['cycles']} |"
        )
    for policy, row in rows.items():
        print(f"{policy}: device reads outside the forwards by site {row['sync_sites']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
