"""
Drafter training throughput on this machine, one setting after another in one process on the same rows: tokens/s
of an `hf-eagle31 train` step (online features from the target included), of feature extraction alone, and of
self-distillation (the target generating answers, batched as `prepare-data --regenerate` does).

    python benchmarks/train_throughput.py --data runs/data/sg-800-6800 --out docs/results/train-throughput

Every row is cut to `--length` tokens, so every step sees batch x length tokens. A training setting runs one
warm-up step, then `--steps` timed steps (the median is reported); its peak resident memory is the process's VmHWM,
reset before the setting (Linux). The baseline is the recipe of benchmarks/scaling_pair.sh (bf16 target, bf16
autocast, TTT 3, draft vocabulary 8192, one thread); every other row changes one thing. A calibration workload is
timed before and after (machine drift, as in `bench`). Prints a markdown table and writes `<out>.json`.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
from transformers import TrainerCallback, TrainingArguments

from hf_eagle31.data import load_prepared
from hf_eagle31.evaluation.calibration import Calibration, format_calibration
from hf_eagle31.features import capture_target_features
from hf_eagle31.modeling.configuration_common import default_target_layer_ids
from hf_eagle31.targets import load_target
from hf_eagle31.training import DrafterArguments, train_drafter


BASELINE = {
    "threads": 1,
    "target_dtype": "bfloat16",
    "bf16": True,
    "ttt_steps": 3,
    "draft_vocab_size": 8192,
    "loss_chunk_size": 0,
}
SETTINGS = {  # name: what differs from BASELINE
    "baseline": {},
    "fp32 drafter (no autocast)": {"bf16": False},
    "fp32 target features": {"target_dtype": "float32"},
    "2 threads": {"threads": 2},
    "TTT 7": {"ttt_steps": 7},
    "TTT 7 + loss chunks of 256": {"ttt_steps": 7, "loss_chunk_size": 256},
    "draft vocab 4096": {"draft_vocab_size": 4096},
    "draft vocab 16384": {"draft_vocab_size": 16384},
    "draft vocab 32000": {"draft_vocab_size": 32000},
    "draft vocab 32000 + loss chunks of 256": {"draft_vocab_size": 32000, "loss_chunk_size": 256},
}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.seconds, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)


def reset_peak_memory():
    """Resets VmHWM (Linux `clear_refs` 5); False where the OS has no such file."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_gib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def cut_rows(data_dir, length, count):
    """The first `count` rows with at least `length` tokens and an assistant token in the kept part, cut to `length`."""
    rows = load_prepared(data_dir)
    kept = []
    for row in rows:
        if len(row["input_ids"]) >= length and sum(row["loss_mask"][2:length]):
            kept.append({"input_ids": row["input_ids"][:length], "loss_mask": row["loss_mask"][:length]})
            if len(kept) == count:
                break
    if len(kept) < count:
        raise SystemExit(
            f"--data has only {len(kept)} rows of >= {length} tokens with assistant tokens: lower --length or --steps."
        )
    import datasets

    return datasets.Dataset.from_list(kept)


def time_training(setting, rows, targets, steps, batch):
    torch.set_num_threads(setting["threads"])
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=steps + 1,
            per_device_train_batch_size=batch,
            learning_rate=5e-4,
            bf16=setting["bf16"],
            use_cpu=True,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            logging_steps=10**6,
            seed=1,
            dataloader_num_workers=0,
        )
        reset_peak_memory()
        drafter_args = DrafterArguments(
            out=out,
            variant="eagle3.1",
            draft_vocab_size=setting["draft_vocab_size"],
            ttt_steps=setting["ttt_steps"],
            overwrite=True,
            loss_chunk_size=setting["loss_chunk_size"],
        )
        train_drafter(
            rows, drafter_args, training_args=args, target=targets[setting["target_dtype"]], callbacks=[timer]
        )
    return statistics.median(timer.seconds[1:]), peak_memory_gib()


def time_features(target, rows, batch, threads, repeats=3):
    torch.set_num_threads(threads)
    ids = torch.tensor(rows["input_ids"][:batch])
    mask = torch.ones_like(ids)
    layer_ids = default_target_layer_ids(target.config.num_hidden_layers)
    seconds = []
    with torch.no_grad():
        capture_target_features(target, ids, mask, layer_ids)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            capture_target_features(target, ids, mask, layer_ids)
            seconds.append(time.perf_counter() - start)
    return ids.numel() / statistics.median(seconds)


def time_generation(target, rows, batch, threads, prompt_tokens=64, new_tokens=64):
    """Greedy generation tokens/s of `batch` prompts at once (every row's first `prompt_tokens` tokens, so no
    padding), each answer exactly `new_tokens` long."""
    torch.set_num_threads(threads)
    ids = torch.tensor([r[:prompt_tokens] for r in rows["input_ids"][:batch]])
    options = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        target.generate(ids, **{**options, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
        start = time.perf_counter()
        target.generate(ids, attention_mask=torch.ones_like(ids), **options)
    return ids.shape[0] * new_tokens / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a prepared dataset (`hf-eagle31 prepare-data`)")
    parser.add_argument("--length", type=int, default=512, help="tokens per row (rows are cut to it)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting (after one warm-up step)")
    parser.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help=f"comma-separated rows to measure (default all: {', '.join(SETTINGS)})",
    )
    parser.add_argument(
        "--generation-batches",
        default="1,8,32",
        help="batch sizes of the self-distillation timing (bf16 target, 2 threads)",
    )
    parser.add_argument("--out", default=None, help="writes <out>.json")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}: use {', '.join(SETTINGS)}")
    batches = [int(b) for b in args.generation_batches.split(",") if b.strip()]
    rows = cut_rows(args.data, args.length, max((args.steps + 1) * args.batch_size, *batches))
    settings = {n: {**BASELINE, **SETTINGS[n]} for n in names}
    targets = {
        dtype: load_target(None, dtype=getattr(torch, dtype))[0]
        for dtype in dict.fromkeys(s["target_dtype"] for s in settings.values())
    }
    calibration = Calibration()
    torch.set_num_threads(1)
    calibration.sample("before")
    step_tokens = args.batch_size * args.length
    results = []
    for name, setting in settings.items():
        seconds, memory = time_training(setting, rows, targets, args.steps, args.batch_size)
        results.append(
            {
                "setting": name,
                **setting,
                "step_s": seconds,
                "tokens_per_s": step_tokens / seconds,
                "peak_rss_gib": memory,
            }
        )
    features = []
    for dtype, target in targets.items():
        for threads in (1, 2):
            features.append(
                {
                    "target_dtype": dtype,
                    "threads": threads,
                    "tokens_per_s": time_features(target, rows, args.batch_size, threads),
                }
            )
    generator = targets.get("bfloat16") or load_target(None, dtype=torch.bfloat16)[0]
    generation = [{"batch": b, "threads": 2, "tokens_per_s": time_generation(generator, rows, b, 2)} for b in batches]
    torch.set_num_threads(1)
    calibration.sample("after")
    base = next((r for r in results if r["setting"] == "baseline"), results[0])
    print(
        f"drafter training step, batch {args.batch_size} x {args.length} tokens, online features, eagle3.1, "
        f"median of {args.steps} steps"
    )
    print("| setting | s / step | tokens/s | × baseline | peak RSS GiB |\n|---|---|---|---|---|")
    for r in results:
        memory = "—" if r["peak_rss_gib"] is None else f"{r['peak_rss_gib']:.1f}"
        print(
            f"| {r['setting']} | {r['step_s']:.2f} | {r['tokens_per_s']:.0f} | "
            f"{r['tokens_per_s'] / base['tokens_per_s']:.2f} | {memory} |"
        )
    print("\nfeature extraction (target forward capturing 3 layers), tokens/s")
    print("| target dtype | threads | tokens/s |\n|---|---|---|")
    for f in features:
        print(f"| {f['target_dtype']} | {f['threads']} | {f['tokens_per_s']:.0f} |")
    print("\nself-distillation: greedy generation of 64 tokens after 64-token prompts, bf16 target, 2 threads")
    print("| prompts at once | tokens/s |\n|---|---|")
    for g in generation:
        print(f"| {g['batch']} | {g['tokens_per_s']:.0f} |")
    print(format_calibration(calibration.summary()))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        report = {
            "settings": vars(args),
            "training": results,
            "features": features,
            "generation": generation,
            "calibration": calibration.summary(),
        }
        with open(args.out + ".json", "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.out}.json")


if __name__ == "__main__":
    main()
