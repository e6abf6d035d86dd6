# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Side-by-side speed benchmark: plain greedy vs HF prompt lookup vs an EAGLE drafter, in one run on real prompts.

Per prompt the three methods run back to back, in an order that rotates from prompt to prompt, so that a noisy
machine slows all of them alike; one warm-up call per method runs first and is not counted. For every method:

    tokens_per_s      generated tokens / wall time of the generate calls
    tau               tokens per verifying target forward (drafter: pooled `SpeculationStats`; prompt lookup: the
                      same statistic from the target's forward log; plain: null)
    time breakdown    target forwards (forward pre/post hooks on the target), drafter forwards
                      (`SpeculationStats.drafter_time_s`) and the rest (candidate bookkeeping, sampling, generate glue)

Greedy speculative decoding is lossless, so all methods must produce the same tokens; the benchmark checks it per
prompt and reports mismatches (in bf16, batched verification forwards are not bit-identical to 1-token forwards,
so rare divergences there are numerics, not bugs; fp32 must match exactly).
"""

import json
import os

import torch

from .evaluation import (
    TargetForwardTimer,
    add_common_arguments,
    check_context,
    load_drafter,
    load_target_for_cli,
    prompts_from_args,
    render_prompt,
    timed_generate,
)


METHODS = ("plain", "prompt_lookup", "drafter")


def benchmark(target, drafter, prompts, max_new_tokens=128, num_assistant_tokens=None, prompt_lookup_tokens=10,
              warmup_tokens=16, progress=True):
    """
    prompts: list of token-id lists (rendered prompts). Returns the result dict written as JSON:
    `{"results": [per-method summary], "per_prompt": [...], "outputs_identical": bool, "mismatched_prompts": [...]}`.
    """
    from tqdm.auto import tqdm

    drafter.check_target(target.config)
    if not drafter.embeddings_ready:
        drafter.load_target_embeddings(target)
    options = {
        "plain": {},
        "prompt_lookup": {"prompt_lookup_tokens": prompt_lookup_tokens},
        "drafter": {"drafter": drafter, "num_assistant_tokens": num_assistant_tokens},
    }
    for ids in prompts:
        check_context(target, ids, max_new_tokens, f"a prompt of {len(ids)} tokens")
    runs = {m: [] for m in METHODS}
    with TargetForwardTimer(target) as timer:
        for method in METHODS:  # warm-up, not counted
            timed_generate(target, prompts[0], timer, max_new_tokens=warmup_tokens, **options[method])
        for index, ids in enumerate(tqdm(prompts, desc="bench", unit="prompt", disable=not progress)):
            order = METHODS[index % 3:] + METHODS[: index % 3]
            for method in order:
                runs[method].append(timed_generate(target, ids, timer, max_new_tokens=max_new_tokens, **options[method]))

    plain_tps = None
    results = []
    for method in METHODS:
        mine = runs[method]
        new_tokens = sum(len(r.new_tokens) for r in mine)
        wall = sum(r.wall_s for r in mine)
        target_s = sum(r.target_time_s for r in mine)
        drafter_s = sum(r.drafter_time_s for r in mine)
        forwards = sum(r.target_forwards for r in mine)
        if method == "drafter":
            stats = [r.stats for r in mine]
            cycles = sum(s.cycles for s in stats)
            tau = sum(a + 1 for s in stats for a in s.accepted) / cycles if cycles else None
        elif method == "prompt_lookup":
            cycles = sum(1 for r in mine for c in r.candidates_per_forward if c > 0)
            plain_forwards = forwards - cycles
            tau = (new_tokens - plain_forwards) / cycles if cycles else None
        else:
            tau = None
        tps = new_tokens / wall if wall else None
        if method == "plain":
            plain_tps = tps
        results.append({
            "method": method, "tokens_per_s": tps, "tau": tau,
            "speedup_vs_plain": tps / plain_tps if tps and plain_tps else None,
            "new_tokens": new_tokens, "wall_s": wall, "target_forwards": forwards,
            "tokens_per_target_forward": new_tokens / forwards if forwards else None,
            "time_breakdown_s": {"target_forwards": target_s, "drafter_forwards": drafter_s,
                                 "other": max(wall - target_s - drafter_s, 0.0)},
        })
    mismatched = [i for i in range(len(prompts))
                  if any(runs[m][i].new_tokens != runs["plain"][i].new_tokens for m in METHODS[1:])]
    per_prompt = [
        {"prompt_tokens": len(ids), **{
            m: {"new_tokens": len(runs[m][i].new_tokens), "wall_s": runs[m][i].wall_s, "tau": runs[m][i].tau,
                "identical_to_plain": runs[m][i].new_tokens == runs["plain"][i].new_tokens}
            for m in METHODS}}
        for i, ids in enumerate(prompts)
    ]
    return {"results": results, "outputs_identical": not mismatched, "mismatched_prompts": mismatched,
            "per_prompt": per_prompt}


def format_report(report):
    lines = ["| method | tok/s | × plain | tau | target fwd s | drafter s | other s |", "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        t = r["time_breakdown_s"]
        lines.append(
            f"| {r['method']} | {r['tokens_per_s']:.2f} | {r['speedup_vs_plain']:.2f} | "
            f"{'—' if r['tau'] is None else format(r['tau'], '.2f')} | {t['target_forwards']:.2f} | "
            f"{t['drafter_forwards']:.2f} | {t['other']:.2f} |"
        )
    same = "yes" if report["outputs_identical"] else f"NO (prompts {report['mismatched_prompts']})"
    lines.append(f"\ngreedy outputs identical across methods: {same}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- CLI


def add_cli_arguments(parser):
    add_common_arguments(parser)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--num-assistant-tokens", type=int, default=None,
                        help="drafter's draft length K (default: the drafter's generation_config)")
    parser.add_argument("--prompt-lookup-tokens", type=int, default=10, help="HF prompt_lookup_num_tokens (default 10)")
    parser.add_argument("--json", default=None, help="write the results as JSON here")


def run_cli(args):
    target, tokenizer = load_target_for_cli(args)
    drafter = load_drafter(args.drafter, target)
    prompts = prompts_from_args(args, tokenizer)
    rendered = [render_prompt(tokenizer, p, (), args.system_prompt, args.chat_template) for p in prompts]
    torch.manual_seed(0)
    report = benchmark(target, drafter, rendered, max_new_tokens=args.max_new_tokens,
                       num_assistant_tokens=args.num_assistant_tokens, prompt_lookup_tokens=args.prompt_lookup_tokens)
    report["settings"] = {
        "target": args.target or "smollm2-135m-instruct", "drafter": args.drafter, "prompts": args.prompts,
        "prompt_ids": [p.id for p in prompts], "max_new_tokens": args.max_new_tokens,
        "num_assistant_tokens": args.num_assistant_tokens, "prompt_lookup_tokens": args.prompt_lookup_tokens,
        "dtype": args.dtype, "device": str(target.device), "threads": torch.get_num_threads(),
    }
    print(format_report(report))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    return 0
