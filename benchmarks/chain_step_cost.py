"""
What one drafter chain step costs, and whether `torch.compile` makes it cheaper.

    python benchmarks/chain_step_cost.py --json docs/results/chain-step-bfloat16.json

Feeds the shipped EAGLE-3.1 drafter the target's features of a `--context`-token prefix, then times one chain step
(a 1-token forward with the drafter's own hidden state; the cache is cropped back after each call): eager, with the
share of each aten op (torch.profiler), the weights the step reads and the bandwidth that implies; then the same step
through `torch.compile(drafter, dynamic=True)`, with the compilation time. Eager and compiled are timed alternately
(`--rounds` rounds of `--repeats` steps each, median per round), so machine drift hits both alike.
"""

import argparse
import json
import os
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import DynamicCache

from hf_eagle31.data.suites import standard_suite
from hf_eagle31.evaluation.bench import chain_step_weight_mb
from hf_eagle31.features import capture_target_features
from hf_eagle31.loading import DEFAULT_DRAFTER, load_drafter
from hf_eagle31.targets import load_target


def context_ids(tokenizer, length):
    """`length` token ids of real text (MT-Bench questions, concatenated)."""
    ids = []
    for prompt in standard_suite(num_per_source=80, source_names=("mtbench",)):
        ids += tokenizer(" ".join(prompt.turns), add_special_tokens=False).input_ids
        if len(ids) >= length + 1:
            return torch.tensor([ids[: length + 1]])
    raise SystemExit(f"--context {length}: the MT-Bench questions hold only {len(ids)} tokens.")


def step_timer(model, token, hidden, position, cache):
    def one():
        start = time.perf_counter()
        model(token, hidden_states=hidden, position_ids=position, cache=cache)
        seconds = time.perf_counter() - start
        cache.crop(-1)
        return seconds

    return one


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drafter", default=str(DEFAULT_DRAFTER))
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context", type=int, default=256, help="tokens in the drafter's cache")
    parser.add_argument("--repeats", type=int, default=50, help="steps per timing round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating eager / compiled rounds")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    target, tokenizer = load_target(None, dtype=dtype)
    drafter = load_drafter(args.drafter, target, dtype=dtype)
    ids = context_ids(tokenizer, args.context)
    cache = DynamicCache()
    with torch.no_grad():
        features, _ = capture_target_features(
            target, ids[:, :-1], torch.ones_like(ids[:, :-1]), drafter.config.target_layer_ids
        )
        fed = drafter(
            ids[:, 1:],
            target_hidden_states=features,
            position_ids=torch.arange(args.context)[None],
            cache=cache,
            logits_to_keep=1,
        )
    hidden = fed.next_hidden[:, -1:]
    pick = fed.logits[:, -1:].argmax(-1)  # draft-vocabulary id -> target id
    token = pick + drafter.d2t[pick]
    position = torch.tensor([[args.context]])
    eager = step_timer(drafter, token, hidden, position, cache)

    with torch.no_grad():
        for _ in range(10):
            eager()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.repeats):
                eager()
        compiled_model = torch.compile(drafter, dynamic=True)
        start = time.perf_counter()
        compiled = step_timer(compiled_model, token, hidden, position, cache)
        compiled()
        compile_s = time.perf_counter() - start
        for _ in range(10):
            compiled()
        rounds = {"eager": [], "compiled": []}
        for _ in range(args.rounds):
            for name, run in (("eager", eager), ("compiled", compiled)):
                rounds[name].append(1e3 * statistics.median(run() for _ in range(args.repeats)))

    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops)
    shares = [
        {"op": e.key, "calls_per_step": e.count / args.repeats, "share": e.self_cpu_time_total / total} for e in ops[:8]
    ]
    weights_mb = chain_step_weight_mb(drafter)
    eager_ms, compiled_ms = statistics.median(rounds["eager"]), statistics.median(rounds["compiled"])
    print(
        f"chain step, {args.dtype}, {args.threads} threads, {args.context}-token drafter cache "
        f"(median of {args.rounds} alternating rounds of {args.repeats} steps)"
    )
    print(
        f"eager    {eager_ms:.3f} ms (rounds {', '.join(f'{t:.3f}' for t in rounds['eager'])}); reads "
        f"{weights_mb:.1f} MB of weights: {weights_mb / eager_ms:.1f} GB/s"
    )
    print(
        f"compiled {compiled_ms:.3f} ms (rounds {', '.join(f'{t:.3f}' for t in rounds['compiled'])}); "
        f"{eager_ms / compiled_ms:.2f}x eager; compiling took {compile_s:.1f} s"
    )
    print("eager step by aten op (self CPU time):")
    for s in shares:
        print(f"  {s['op']:45s} {100 * s['share']:5.1f}%  {s['calls_per_step']:.0f} calls/step")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(
                {
                    "settings": vars(args),
                    "eager_ms": eager_ms,
                    "compiled_ms": compiled_ms,
                    "rounds_ms": rounds,
                    "compile_s": compile_s,
                    "weights_mb": weights_mb,
                    "ops": shares,
                },
                f,
                indent=1,
            )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
