"""`hf-eagle31 drift`: attention masses per depth (sum to 1, category split), fed-state norms, CLI outputs."""

import json

import pytest
import torch
from transformers import DynamicCache

from hf_eagle31.cli import main
from hf_eagle31.evaluation.drift import CATEGORIES, attention_split, measure_drift, target_continuation

from conftest import TinyCliSetup, make_drafter


def test_attention_split_by_hand():
    weights = torch.tensor([[0.1, 0.2, 0.05, 0.15, 0.1, 0.3, 0.1]])  # P=4, n=6, draft keys 6..
    masses = attention_split(weights, prompt_length=4, feature_length=6, sink_tokens=2)
    assert masses[0].tolist() == pytest.approx([0.3, 0.2, 0.4, 0.1])
    # a sink window longer than the prompt is clipped to the prompt
    assert attention_split(weights, 1, 6, 4)[0].tolist() == pytest.approx([0.1, 0.0, 0.8, 0.1])


@torch.no_grad()
def manual_drift(target, drafter, prompt, generate_tokens, depth, sink_tokens):
    """The diagnostic computed the slow way: one prefill block over all positions, explicit per-key loops."""
    new = target_continuation(target, prompt, generate_tokens + 1 + depth)
    n = len(prompt) + generate_tokens
    full = torch.tensor([prompt + new])
    hs = target(full[:, :n], output_hidden_states=True).hidden_states
    feats = [hs[i] for i in drafter.config.target_layer_ids]
    cache = DynamicCache()
    out = drafter(full[:, 1 : n + 1], target_hidden_states=feats, cache=cache, output_attentions=True)
    fed = [drafter.project_target_hidden_states([f[:, n - 1 : n] for f in feats])[0, 0]]
    rows, outputs = [out.attentions[0, :, -1]], [out]
    for k in range(2, depth + 1):
        best = outputs[-1].logits[0, -1].argmax()
        token = (best + drafter.d2t[best]).view(1, 1)
        fed.append(outputs[-1].next_hidden[0, -1])
        outputs.append(
            drafter(token, hidden_states=outputs[-1].next_hidden[:, -1:], cache=cache, output_attentions=True)
        )
        rows.append(outputs[-1].attentions[0, :, -1])
    masses = []
    for row in rows:  # (nh, kv_len)
        per_head = []
        for head in row:
            m = dict.fromkeys(CATEGORIES, 0.0)
            for j, w in enumerate(head.tolist()):
                cat = "sink" if j < sink_tokens else "prompt" if j < len(prompt) else "generated" if j < n else "draft"
                m[cat] += w
            per_head.append(m)
        masses.append({c: sum(m[c] for m in per_head) / len(per_head) for c in CATEGORIES})
    return masses, fed, outputs


@pytest.mark.parametrize("variant", ["eagle3", "eagle3.1", "mtp"])
def test_masses_and_norms_match_manual_computation(target, variant):
    drafter = make_drafter(target, variant, draft_vocab_size=48, seed=8)
    prompts = [[3, 9, 4, 1, 5, 9, 2, 6], [7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5]]
    depth, gen, sink = 4, 5, 3
    report = measure_drift(
        target, {"d": drafter}, prompts, depth=depth, generate_tokens=gen, sink_tokens=sink, progress=False
    )
    summary = report["drafters"]["d"]
    manual = [manual_drift(target, drafter, p, gen, depth, sink) for p in prompts]
    for k in range(depth):
        for c in CATEGORIES:
            expected = sum(m[0][k][c] for m in manual) / len(prompts)
            assert summary["attention"][c][k] == pytest.approx(expected, abs=1e-5), (c, k)
        for row in summary["per_prompt"]:  # every query's mass sums to 1
            assert sum(row["attention"][c][k] for c in CATEGORIES) == pytest.approx(1.0, abs=1e-5)
        norms = [m[1][k].norm().item() for m in manual]
        assert summary["hidden_norm"][k] == pytest.approx(sum(norms) / len(norms), rel=1e-5)
    assert summary["attention"]["draft"][0] == 0.0 and summary["attention"]["draft"][1] > 0
    # depth >= 2 is fed the previous step's output: a (EAGLE-3, MTP) or norm(a) (`norm_output`)
    for row, (_, fed, outputs) in zip(summary["per_prompt"], manual):
        a = outputs[0].pre_norm_hidden[0, -1]
        expected = drafter.norm(a) if drafter.config.norm_output else a
        assert row["hidden_norm"][1] == pytest.approx(expected.norm().item(), rel=1e-5)
        assert row["output_norm"][0] == pytest.approx(a.norm().item(), rel=1e-5)


def test_acceptance_against_target_continuation(target):
    drafter = make_drafter(target, "eagle3.1", seed=9)
    prompt = [1, 2, 3, 4, 5, 6]
    report = measure_drift(target, {"d": drafter}, [prompt], depth=3, generate_tokens=4, progress=False)
    row = report["drafters"]["d"]["per_prompt"][0]
    continuation = target_continuation(target, prompt, 4 + 1 + 3)
    assert row["reference_tokens"] == continuation[5:8] and row["feature_positions"] == 10
    matches = [int(t == r) for t, r in zip(row["draft_tokens"], row["reference_tokens"])]
    assert row["accepted"] == [int(all(matches[: k + 1])) for k in range(3)]


def test_drift_cli_two_drafters(tmp_path, capsys):
    cli = TinyCliSetup(tmp_path, variants=("eagle3", "eagle3.1"))
    out = tmp_path / "drift"
    rc = main(cli.argv("drift", num_prompts=2, depth=3, generate_tokens=4, out=str(out)))
    assert rc == 0
    report = json.loads((out / "drift.json").read_text())
    assert list(report["drafters"]) == [str(d) for d in cli.drafter_dirs]
    assert report["drafters"][str(cli.drafter_dirs[1])]["variant"] == "eagle3 + fc_norm + norm_output"
    for summary in report["drafters"].values():
        assert set(summary["attention"]) == set(CATEGORIES)
        assert all(len(v) == 3 for v in summary["attention"].values()) and len(summary["hidden_norm"]) == 3
    assert (out / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| drafter | depth | sink | prompt | generated | draft |" in capsys.readouterr().out
