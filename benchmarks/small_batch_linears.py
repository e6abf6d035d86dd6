"""
What a verification forward costs on this machine, with and without `hf_eagle31.small_batch.small_batch_linears`:
the target's forward over n = 1..N new tokens after a cached context, the two ways interleaved, medians of
`--repeats` timings, printed as ms and as t(n) / t(1) (the price of verifying n - 1 drafted tokens).

    python benchmarks/small_batch_linears.py --dtype float32 --threads 2
"""

import argparse
import statistics
import time

import torch
from transformers import DynamicCache

from hf_eagle31.small_batch import small_batch_linears
from hf_eagle31.targets import load_target


def forward_times(target, ids, context, max_new, repeats):
    """{n: median ms of a forward over n new tokens after `context` cached ones}."""
    times = {n: [] for n in range(1, max_new + 1)}
    with torch.no_grad():
        cache = DynamicCache()
        target(input_ids=ids[:, :context], cache=cache, use_cache=True)
        for _ in range(repeats):
            for n in times:
                start = time.perf_counter()
                target(input_ids=ids[:, context : context + n], cache=cache, use_cache=True)
                times[n].append(time.perf_counter() - start)
                cache.crop(-n)
    return {n: 1e3 * statistics.median(t) for n, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default=None, help="target name or path (default: the embedded SmolLM2)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--context", type=int, default=160, help="cached tokens before the timed forwards")
    parser.add_argument("--max-new-tokens", type=int, default=9, help="largest n (a verification of K = n - 1)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=2, help="stock / small-batch alternations")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    target, _ = load_target(args.target, dtype=getattr(torch, args.dtype))
    torch.manual_seed(0)
    ids = torch.randint(100, target.config.vocab_size - 100, (1, args.context + args.max_new_tokens))
    runs = {"stock": [], "small-batch": []}
    for _ in range(args.rounds):
        runs["stock"].append(forward_times(target, ids, args.context, args.max_new_tokens, args.repeats))
        with small_batch_linears(target):
            runs["small-batch"].append(forward_times(target, ids, args.context, args.max_new_tokens, args.repeats))
    print(
        f"target forward after {args.context} cached tokens, {args.dtype}, {torch.get_num_threads()} threads "
        f"(median over {args.rounds} rounds x {args.repeats} timings)"
    )
    print("| n new tokens | stock ms | stock t(n)/t(1) | small-batch ms | small-batch t(n)/t(1) |")
    print("|---|---|---|---|---|")
    med = {k: {n: statistics.median(r[n] for r in v) for n in v[0]} for k, v in runs.items()}
    for n in med["stock"]:
        s, b = med["stock"], med["small-batch"]
        print(f"| {n} | {s[n]:.1f} | {s[n] / s[1]:.2f} | {b[n]:.1f} | {b[n] / b[1]:.2f} |")


if __name__ == "__main__":
    main()
