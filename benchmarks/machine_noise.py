"""
How steady is this machine? Samples `bench`'s calibration workload (a fixed 32-token forward of the target) again and
again with nothing else running and prints every sample and their drift, the number `bench` and `eval` flag above
15%. A machine whose idle samples already drift more than that flags every benchmark it runs: read its results by
their per-pass ratios (methods are interleaved prompt by prompt), not by absolute tokens/s.

    python benchmarks/machine_noise.py --dtype bfloat16 --samples 8 --gap 5 [--json noise.json]
"""

import argparse
import json
import time

import torch

from hf_eagle31.evaluation.calibration import DRIFT_THRESHOLD, Calibration, forward_workload, relative_drift
from hf_eagle31.targets import load_target


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--target", default=None, help="target id or path (default: the embedded SmolLM2-135M-Instruct)"
    )
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8, help="calibration samples to take (default 8)")
    parser.add_argument("--gap", type=float, default=5.0, help="seconds of idle between samples (default 5)")
    parser.add_argument("--json", default=None, help="also write the samples to this JSON file")
    args = parser.parse_args()
    if args.samples < 2:
        parser.error("--samples must be >= 2 (a drift needs two samples)")

    torch.set_num_threads(args.threads)
    target, tokenizer = load_target(args.target, dtype=getattr(torch, args.dtype))
    ids = tokenizer("Write a short poem about the sea.", return_tensors="pt").input_ids
    target.generate(ids, max_new_tokens=16, do_sample=False)  # warm the kernels as a bench warm-up does
    calibration = Calibration(forward_workload(target))
    for index in range(args.samples):
        if index:
            time.sleep(args.gap)
        sample = calibration.sample(f"sample {index + 1}")
        timings = ", ".join(f"{1e3 * t:.1f}" for t in sample.timings_s)
        load = sample.load_average[0]
        print(f"sample {index + 1}: {1e3 * sample.seconds:.2f} ms (timings {timings}; load {load:.2f})", flush=True)
    medians = [s.seconds for s in calibration.samples]
    drift = calibration.drift
    pairs = [relative_drift(medians[i : i + 2]) for i in range(len(medians) - 1)]
    print(
        f"{calibration.description}, {args.threads} threads: {len(medians)} samples {1e3 * min(medians):.2f}-"
        f"{1e3 * max(medians):.2f} ms, drift {100 * drift:.1f}% (bench flags above {100 * DRIFT_THRESHOLD:.0f}%); "
        f"consecutive samples differ by up to {100 * max(pairs):.1f}%"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**calibration.summary(), "gap_s": args.gap, "consecutive_drifts": pairs}, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
