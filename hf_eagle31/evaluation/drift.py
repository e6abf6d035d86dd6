# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Attention-drift diagnostic: where does the drafter look, and how large is the state it feeds itself, at each chain
depth?

For every prompt the target first answers greedily for `generate_tokens` tokens, so that the sequence the drafter
sees has three kinds of target-feature positions: template/sink positions at the start, the prompt, and tokens the
target generated itself. The target's captured features of the whole prefix (prompt + generated) are fed to the
drafter exactly as `EagleCandidateGenerator` does after a verification (position p gets token x_{p+1} and features
g_p; x_n is the target's next token), then the drafter drafts `depth` tokens greedily with its public forward and
`output_attentions=True`:

    depth 1: the query at the last feature position n-1 (its hidden input is the projected target state)
    depth k: the query of chain step k-1 at position n-1+(k-1) (its hidden input is the drafter's own state)

Per depth we record the query's attention mass (averaged over heads, then prompts) on

    sink       key positions 0 .. sink_tokens-1 (BOS / chat-template tokens that attract attention everywhere)
    prompt     the remaining prompt positions
    generated  target-feature positions of tokens the target generated (the prefix answer)
    draft      the drafter's own chain positions n .. (query position), the query itself included

(the four sum to 1 for every query), the norm of the hidden state fed into the step, the norm of the step's
pre-norm output `a`, and whether the drafted token equals the target's greedy continuation. EAGLE-3 feeds `a`
back and its norm grows with depth while attention moves to its own positions; EAGLE-3.1 (`norm_output`) feeds
norm(a) and stays flat.
"""

import math

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from ..errors import InputError
from ..features import capture_target_features
from ..loading import check_drafters_fit
from ..modeling import SpeculationStats, variant_of


CATEGORIES = ("sink", "prompt", "generated", "draft")


def attention_split(weights, prompt_length, feature_length, sink_tokens):
    """
    Splits attention probabilities over keys into the four `CATEGORIES`.

    weights: (..., kv_len) probabilities of one query (any leading dims, e.g. heads).
    prompt_length: P, positions 0..P-1 carry target features of prompt tokens.
    feature_length: n, positions P..n-1 carry target features of generated tokens; n.. are draft positions.
    Returns (..., 4) masses in `CATEGORIES` order.
    """
    kv_len = weights.shape[-1]
    sink = min(sink_tokens, prompt_length)
    bounds = [0, sink, prompt_length, feature_length, kv_len]
    return torch.stack([weights[..., lo:hi].sum(-1) for lo, hi in zip(bounds[:-1], bounds[1:])], dim=-1)


@torch.no_grad()
def target_continuation(target, prompt_ids, num_new_tokens):
    """The target's greedy continuation of `prompt_ids` (list of ints), exactly `num_new_tokens` long (EOS is
    suppressed so that every prompt yields the same number of generated/reference positions)."""
    input_ids = torch.tensor([prompt_ids], device=target.device)
    out = target.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=num_new_tokens,
        min_new_tokens=num_new_tokens,
        do_sample=False,
        pad_token_id=_pad_id(target),
    )
    return out[0, len(prompt_ids) :].tolist()


def _pad_id(model):
    config = model.generation_config
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    if isinstance(pad, (list, tuple)):
        pad = pad[0] if pad else None
    return 0 if pad is None else pad


@torch.no_grad()
def drafter_chain(drafter, sequence, features, depth):
    """
    Runs the drafter's inference chain by hand and records what the diagnostic needs.

    sequence: (1, n+1) token ids x_0..x_n (x_n is the target's next token after the feature-covered prefix).
    features: the captured target states of positions 0..n-1 (as `target_hidden_states`).
    Returns a dict of per-depth lists: `attentions` ((nh, kv_len) of the depth's query), `hidden_norms` (norm of the
    hidden state fed into the step), `output_norms` (norm of the pre-norm output `a`), `tokens` (drafted target ids).
    """
    n = sequence.shape[1] - 1
    device = drafter.device
    sequence = sequence.to(device)
    features = [f.to(device) for f in features] if isinstance(features, (list, tuple)) else features.to(device)
    cache = DynamicCache()
    record = {"attentions": [], "hidden_norms": [], "output_norms": [], "tokens": []}

    def split(positions):
        if isinstance(features, (list, tuple)):
            return [f[:, positions] for f in features]
        return features[:, positions]

    if n > 1:  # everything but the last position, without the (n x n) attention matrix
        drafter(
            sequence[:, 1:n],
            target_hidden_states=split(slice(0, n - 1)),
            position_ids=torch.arange(n - 1, device=device)[None],
            cache=cache,
        )
    last = split(slice(n - 1, n))
    hidden_in = drafter.project_target_hidden_states(last)  # what the depth-1 step is fed: the projected target state
    out = drafter(
        sequence[:, n : n + 1],
        target_hidden_states=last,
        position_ids=torch.tensor([[n - 1]], device=device),
        cache=cache,
        output_attentions=True,
    )
    token = None  # the previous step's pick (set at the end of each step)
    for k in range(1, depth + 1):
        if k > 1:
            hidden_in = out.next_hidden
            out = drafter(
                token,
                hidden_states=hidden_in,
                position_ids=torch.tensor([[n - 2 + k]], device=device),
                cache=cache,
                output_attentions=True,
            )
        record["attentions"].append(out.attentions[0, :, -1].float().cpu())  # (nh, kv_len)
        record["hidden_norms"].append(hidden_in[0, -1].float().norm().item())
        record["output_norms"].append(out.pre_norm_hidden[0, -1].float().norm().item())
        best = out.logits[:, -1].argmax(-1)
        token = drafter.draft_to_target_ids[best][:, None]  # draft id -> target id
        record["tokens"].append(token.item())
    return record


@torch.no_grad()
def measure_drift(target, drafters, prompts, depth=8, generate_tokens=32, sink_tokens=4, progress=True):
    """
    The diagnostic over several prompts and drafters (the same target prefixes for every drafter).

    drafters: {label: drafter}; prompts: list of prompt token-id lists (already rendered with the chat template).
    Returns {"settings": ..., "drafters": {label: {"attention": {category: [mass per depth]}, "hidden_norm": [...],
    "output_norm": [...], "acceptance_per_depth": [...], "match_per_depth": [...], "per_prompt": [...]}}}.
    """
    if depth < 1 or generate_tokens < 0 or sink_tokens < 0:
        raise InputError("need depth >= 1, generate_tokens >= 0 and sink_tokens >= 0.")
    check_drafters_fit(target, drafters)
    for drafter in drafters.values():
        if not drafter.embeddings_ready:
            drafter.load_target_embeddings(target)
    per_prompt = {label: [] for label in drafters}
    for prompt_ids in tqdm(prompts, desc="drift", unit="prompt", disable=not progress):
        prompt_ids = list(prompt_ids)
        # generated prefix, then x_n (the target's next token), then `depth` reference tokens for the acceptance check
        new = target_continuation(target, prompt_ids, generate_tokens + 1 + depth)
        n = len(prompt_ids) + generate_tokens
        full = prompt_ids + new
        sequence = torch.tensor([full[: n + 1]], device=target.device)
        reference = full[n + 1 : n + 1 + depth]
        layer_sets = {tuple(d.config.target_layer_ids) for d in drafters.values()}
        prefix = sequence[:, :n]
        captured = {ids: capture_target_features(target, prefix, torch.ones_like(prefix), ids)[0] for ids in layer_sets}
        for label, drafter in drafters.items():
            record = drafter_chain(drafter, sequence, captured[tuple(drafter.config.target_layer_ids)], depth)
            masses = [attention_split(w, len(prompt_ids), n, sink_tokens).mean(0) for w in record["attentions"]]
            matches = [int(t == r) for t, r in zip(record["tokens"], reference)]
            accepted = [int(all(matches[: k + 1])) for k in range(depth)]
            per_prompt[label].append(
                {
                    "prompt_tokens": len(prompt_ids),
                    "feature_positions": n,
                    "attention": {c: [m[i].item() for m in masses] for i, c in enumerate(CATEGORIES)},
                    "hidden_norm": record["hidden_norms"],
                    "output_norm": record["output_norms"],
                    "draft_tokens": record["tokens"],
                    "reference_tokens": reference,
                    "accepted": accepted,
                }
            )
    report = {
        "settings": {
            "depth": depth,
            "generate_tokens": generate_tokens,
            "sink_tokens": sink_tokens,
            "num_prompts": len(prompts),
            "categories": list(CATEGORIES),
        },
        "drafters": {},
    }
    for label, drafter in drafters.items():
        rows = per_prompt[label]
        acceptance = _as_speculation_stats([r["accepted"] for r in rows])
        summary = {
            "variant": describe_variant(drafter.config),
            "attention": {c: _mean_over_prompts([r["attention"][c] for r in rows]) for c in CATEGORIES},
            "hidden_norm": _mean_over_prompts([r["hidden_norm"] for r in rows]),
            "output_norm": _mean_over_prompts([r["output_norm"] for r in rows]),
            # cumulative: drafts 1..k all equal the target's greedy tokens (what a verifier would accept)
            "acceptance_per_depth": acceptance.acceptance_per_depth,
            "conditional_acceptance_per_depth": acceptance.conditional_acceptance_per_depth,
            "per_prompt": rows,
        }
        report["drafters"][label] = summary
    return report


def describe_variant(config):
    kind = "mtp" if variant_of(config).model_type == "mtp_drafter" else "eagle3"  # registry: modeling/
    switches = [name for name in ("fc_norm", "norm_output", "norm_before_fc") if getattr(config, name, False)]
    return kind + ("" if not switches else " + " + " + ".join(switches))


def _mean_over_prompts(rows):
    if not rows:
        return []
    return [sum(values) / len(values) for values in zip(*rows)]


def _as_speculation_stats(accepted_rows):
    """
    Each prompt as one speculation cycle of `depth` drafts (rows are cumulative 0/1 acceptance flags), pooled into
    the `SpeculationStats` that defines acceptance (and its conditional form) for every report.
    """
    return SpeculationStats(
        draft_lengths=[len(row) for row in accepted_rows], accepted=[sum(row) for row in accepted_rows]
    )


def plot_drift(report, path):
    """One PNG: attention mass per category, hidden-state norm and acceptance vs chain depth, one line per drafter."""
    import matplotlib  # optional (the `plots` extra): only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [*(("attention", c) for c in CATEGORIES), ("hidden_norm", None), ("acceptance_per_depth", None)]
    titles = {
        "sink": "attention mass on sink/template positions",
        "prompt": "attention mass on prompt positions",
        "generated": "attention mass on generated-token features",
        "draft": "attention mass on own draft positions",
        "hidden_norm": "norm of the hidden state fed to the step",
        "acceptance_per_depth": "cumulative acceptance",
    }
    cols = 3
    fig, axes = plt.subplots(
        math.ceil(len(panels) / cols), cols, figsize=(5 * cols, 3.6 * math.ceil(len(panels) / cols))
    )
    for ax, (key, category) in zip(axes.flat, panels):
        for label, summary in report["drafters"].items():
            values = summary[key][category] if category else summary[key]
            depths = list(range(1, len(values) + 1))
            ax.plot(depths, values, marker="o", label=f"{label} ({summary['variant']})")
        ax.set_title(titles[category or key], fontsize=10)
        ax.set_xlabel("chain depth")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(
        f"drift diagnostic: {report['settings']['num_prompts']} prompts, "
        f"{report['settings']['generate_tokens']} generated tokens before drafting",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_drift_table(report):
    """Markdown: one row per (drafter, depth)."""
    lines = [
        "| drafter | depth | " + " | ".join(CATEGORIES) + " | hidden norm | accepted |",
        "|---|---|" + "---|" * (len(CATEGORIES) + 2),
    ]
    for label, s in report["drafters"].items():
        for k in range(len(s["hidden_norm"])):
            masses = " | ".join(f"{s['attention'][c][k]:.3f}" for c in CATEGORIES)
            lines.append(
                f"| {label} | {k + 1} | {masses} | {s['hidden_norm'][k]:.2f} | {s['acceptance_per_depth'][k]:.2f} |"
            )
    return "\n".join(lines)
