"""
Scaling curve of drafters trained from scratch: validation tau and first-token acceptance against the tokens each
checkpoint has seen, one line per variant, with a least-squares fit tau = a + b * log10(tokens) over the trained
checkpoints and where it puts tau 2.5 / 3 / 4.

    python benchmarks/scaling_curve.py --data runs/data/sg-800-6800 --batch-size 2 \
        --eval eagle3.1=runs/pair/validate-eagle3.1.json --eval eagle3=runs/pair/validate-eagle3.json \
        --out docs/results/scaling

Each `--eval` is an `hf-eagle31 eval --json` file whose drafters include `.../checkpoint-<step>` directories
(other rows, e.g. a shipped drafter, are reported as references). Tokens seen at step s = s * batch size * the mean
row length of `--data` (all tokens, and assistant tokens: the ones the loss is computed on).
Writes `<out>.json` and `<out>.png`.
"""

import argparse
import json
import math
import re


CHECKPOINT = re.compile(r"checkpoint-(\d+)/?$")
TARGET_TAUS = (2.5, 3.0, 4.0)


def mean_row_tokens(data_dir):
    from hf_eagle31.data import load_prepared

    rows = load_prepared(data_dir)
    lengths = [len(ids) for ids in rows["input_ids"]]
    assistant = [sum(mask) for mask in rows["loss_mask"]]
    return sum(lengths) / len(lengths), sum(assistant) / len(assistant)


def fit_log_linear(points):
    """Least squares tau = a + b * log10(tokens); None with fewer than two distinct token counts."""
    xs = [math.log10(t) for t, _ in points]
    ys = [y for _, y in points]
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def curve(eval_json, tokens_per_step, assistant_per_step):
    with open(eval_json) as f:
        results = json.load(f)["results"]
    points, references = [], []
    for r in results:
        acc = r["acceptance_per_depth"]
        row = {
            "drafter": r["drafter"],
            "tau": r["tau"],
            "acc1": acc[0] if acc else None,
            "num_assistant_tokens": r["num_assistant_tokens"],
            "cycles": r["cycles"],
        }
        match = CHECKPOINT.search(r["drafter"])
        if match:
            step = int(match.group(1))
            row.update(step=step, tokens=step * tokens_per_step, assistant_tokens=step * assistant_per_step)
            points.append(row)
        else:
            references.append(row)
    points.sort(key=lambda p: p["step"])
    fit = fit_log_linear([(p["tokens"], p["tau"]) for p in points])
    out = {"points": points, "references": references}
    if fit:
        a, b = fit
        out["fit"] = {"tau = a + b * log10(tokens)": {"a": a, "b": b}, "tau_gain_per_doubling": b * math.log10(2)}
        out["tokens_for_tau"] = {str(t): (10 ** ((t - a) / b) if b > 0 else None) for t in TARGET_TAUS}
    return out


def plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_tau, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for variant, c in curves.items():
        xs = [p["tokens"] for p in c["points"]]
        line = ax_tau.plot(xs, [p["tau"] for p in c["points"]], "o-", label=variant)[0]
        ax_acc.plot(xs, [p["acc1"] for p in c["points"]], "o-", color=line.get_color(), label=variant)
        if "fit" in c and xs:
            fit = c["fit"]["tau = a + b * log10(tokens)"]
            span = [min(xs), max(xs) * 4]
            ax_tau.plot(span, [fit["a"] + fit["b"] * math.log10(x) for x in span], ":", color=line.get_color())
        for ref in c["references"]:
            ax_tau.axhline(ref["tau"], color=line.get_color(), alpha=0.3, lw=1)
    for ax, label in ((ax_tau, "validation tau (K = 4, MT-Bench)"), (ax_acc, "first-token acceptance")):
        ax.set_xscale("log")
        ax.set_xlabel("training tokens seen")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    ax_tau.set_title("from scratch, identical recipe (dotted: log-linear fit; faint: shipped drafter)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the prepared training data (for tokens per row)")
    parser.add_argument("--batch-size", type=int, required=True, help="rows per optimizer step")
    parser.add_argument("--eval", action="append", required=True, metavar="VARIANT=EVAL_JSON")
    parser.add_argument("--out", required=True, help="output prefix: writes <out>.json and <out>.png")
    args = parser.parse_args(argv)
    tokens, assistant = mean_row_tokens(args.data)
    curves = {}
    for spec in args.eval:
        variant, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"--eval {spec!r}: expected VARIANT=EVAL_JSON")
        curves[variant] = curve(path, tokens * args.batch_size, assistant * args.batch_size)
    report = {
        "data": args.data,
        "batch_size": args.batch_size,
        "mean_row_tokens": tokens,
        "mean_row_assistant_tokens": assistant,
        "curves": curves,
    }
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=1)
    plot(curves, args.out + ".png")
    for variant, c in curves.items():
        print(variant)
        for p in c["points"] + c["references"]:
            seen = f"{p['tokens'] / 1e3:7.0f}k tokens" if "tokens" in p else "  (reference)"
            print(f"  {p['drafter']:60s} {seen}  tau {p['tau']:.3f}  acc@1 {p['acc1']:.3f}")
        if "fit" in c:
            print(
                f"  tau gain per doubling of tokens: {c['fit']['tau_gain_per_doubling']:+.3f}; tokens for tau "
                + ", ".join(f"{t}: {'never' if n is None else f'{n:.1e}'}" for t, n in c["tokens_for_tau"].items())
            )
    print(f"wrote {args.out}.json and {args.out}.png")


if __name__ == "__main__":
    main()
