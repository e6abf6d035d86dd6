"""
Tokens per CPU-second of plain greedy, the shipped drafter and the `auto` policy on the embedded SmolLM2 target, in
one process with one torch thread: CPU time of this process (`time.process_time`) does not grow while other
processes hold the cores, so on a shared machine it ranks policies where wall-clock speed-ups drift with the load.
(The auto policy still times its own cycles in wall-clock seconds, as it must on any device, so a loaded machine
still disturbs its choices.)

    OMP_NUM_THREADS=1 python benchmarks/auto_cpu_time.py --dtype float32 --num-prompts 2 --max-new-tokens 64 \
        --policies constant,confidence+copy,tree+copy@3x4x10:0.1,auto [--json out.json]
"""

import argparse
import json
import time

import torch

from hf_eagle31.evaluation.policies import drafting_policy
from hf_eagle31.evaluation.prompts import render_prompt, suite_prompts
from hf_eagle31.loading import load_drafter
from hf_eagle31.targets import load_target


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--drafter", default="hf_eagle31/drafters/smollm2-135m-instruct-eagle3.1")
    parser.add_argument("--num-prompts", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--policies", default="constant,confidence+copy,tree+copy@3x4x10:0.1,auto")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    target, tokenizer = load_target(None, dtype=dtype)
    drafter = load_drafter(args.drafter, target, dtype=dtype)
    suite = suite_prompts("standard", tokenizer, args.num_prompts, source_names=["mtbench"])
    prompts = [render_prompt(tokenizer, p, (), None, None) for p in suite]
    methods = {"plain": None, **{name: drafting_policy(name) for name in args.policies.split(",")}}
    rows = {name: {"cpu_s": 0.0, "wall_s": 0.0, "tokens": 0, "shapes": []} for name in methods}
    outputs = {}
    for index, prompt in enumerate(prompts):
        ids = torch.tensor([prompt])
        order = list(methods)[index % len(methods) :] + list(methods)[: index % len(methods)]
        for name in order:
            kwargs = {} if methods[name] is None else {"assistant_model": drafter, **methods[name]}
            cpu, wall = time.process_time(), time.perf_counter()
            out = target.generate(ids, max_new_tokens=args.max_new_tokens, do_sample=False, **kwargs)
            row = rows[name]
            row["cpu_s"] += time.process_time() - cpu
            row["wall_s"] += time.perf_counter() - wall
            row["tokens"] += out.shape[1] - ids.shape[1]
            if methods[name] is not None:
                row["shapes"] += drafter.last_speculation_stats.shapes
            outputs.setdefault(index, set()).add(tuple(out[0].tolist()))
    plain = rows["plain"]["tokens"] / rows["plain"]["cpu_s"]
    print(f"{args.dtype}, {len(prompts)} MT-Bench prompts x {args.max_new_tokens} tokens, 1 torch thread")
    print("| method | tok per CPU-s | x plain (CPU time) | tok/s wall |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        rate = row["tokens"] / row["cpu_s"]
        row["tokens_per_cpu_s"], row["speedup_cpu_time"] = rate, rate / plain
        print(f"| {name} | {rate:.2f} | {rate / plain:.2f} | {row['tokens'] / row['wall_s']:.2f} |")
    print("greedy outputs identical across methods:", "yes" if all(len(v) == 1 for v in outputs.values()) else "NO")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
