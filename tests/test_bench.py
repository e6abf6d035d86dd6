"""`hf-eagle31 bench`: forward-log tau equals the generator's stats, JSON shape of a CLI run on saved tiny models."""

import json

import pytest
import torch
from conftest import make_drafter, save_tiny_setup, tiny_target

from hf_eagle31.bench import METHODS, benchmark
from hf_eagle31.cli import main
from hf_eagle31.evaluation import TargetForwardTimer, tau_from_forwards, timed_generate


@pytest.mark.parametrize("variant", ["eagle3", "mtp"])
def test_tau_from_forward_log_equals_speculation_stats(target, variant):
    """The forward-log statistic used for prompt lookup gives the generator's own tau on a drafter run."""
    drafter = make_drafter(target, variant, seed=3)
    prompt = torch.randint(0, 64, (12,)).tolist()
    with TargetForwardTimer(target) as timer:
        run = timed_generate(target, prompt, timer, drafter=drafter, max_new_tokens=30, num_assistant_tokens=3)
    stats = drafter.last_speculation_stats
    assert run.target_forwards == stats.target_forwards and len(run.new_tokens) == 30
    assert run.candidates_per_forward[0] == 0  # the EAGLE generator lets the target prefill first
    assert [c for c in run.candidates_per_forward if c > 0] == stats.draft_lengths
    assert tau_from_forwards(run.candidates_per_forward, len(run.new_tokens)) == pytest.approx(stats.tau)


def test_benchmark_identical_outputs_and_breakdown(target):
    drafter = make_drafter(target, "eagle3.1", seed=2)
    # repetitive prompts so that prompt lookup finds n-gram matches and verifies candidates
    prompts = [[5, 6, 7, 8] * 4, [9, 10, 11] * 5]
    report = benchmark(target, drafter, prompts, max_new_tokens=20, num_assistant_tokens=3, prompt_lookup_tokens=4,
                       warmup_tokens=4, progress=False)
    assert report["outputs_identical"] and report["mismatched_prompts"] == []
    by_method = {r["method"]: r for r in report["results"]}
    assert list(by_method) == list(METHODS)
    assert by_method["plain"]["tau"] is None and by_method["plain"]["speedup_vs_plain"] == pytest.approx(1.0)
    assert by_method["plain"]["target_forwards"] == 2 * 20  # one forward per token
    for r in report["results"]:
        assert r["new_tokens"] == 40
        t = r["time_breakdown_s"]
        assert t["target_forwards"] > 0 and t["target_forwards"] + t["drafter_forwards"] <= r["wall_s"] + 1e-6
    assert by_method["drafter"]["time_breakdown_s"]["drafter_forwards"] > 0
    assert by_method["prompt_lookup"]["time_breakdown_s"]["drafter_forwards"] == 0
    assert by_method["drafter"]["tau"] >= 1 and by_method["prompt_lookup"]["tau"] > 1


def test_bench_cli_json_shape(tmp_path, capsys):
    _, _, target_dir, (drafter_dir,), prompts = save_tiny_setup(tmp_path)
    out = tmp_path / "bench.json"
    rc = main([
        "bench", "--target", str(target_dir), "--drafter", str(drafter_dir), "--prompts", str(prompts),
        "--max-new-tokens", "12", "--num-assistant-tokens", "3", "--num-prompts", "2", "--json", str(out),
    ])
    assert rc == 0
    report = json.loads(out.read_text())
    assert [r["method"] for r in report["results"]] == ["plain", "prompt_lookup", "drafter"]
    for r in report["results"]:
        assert isinstance(r["tokens_per_s"], float) and r["tokens_per_s"] > 0
        assert r["tau"] is None or isinstance(r["tau"], float)
        assert set(r["time_breakdown_s"]) == {"target_forwards", "drafter_forwards", "other"}
    assert isinstance(report["results"][2]["tau"], float)
    assert report["outputs_identical"] is True and len(report["per_prompt"]) == 2
    assert report["settings"]["prompt_ids"] == ["p0", "p1"]
    assert "greedy outputs identical across methods: yes" in capsys.readouterr().out


def test_bench_rejects_mismatched_drafter(tmp_path):
    _, _, target_dir, _, prompts = save_tiny_setup(tmp_path, variants=())
    other = tiny_target(num_hidden_layers=6)
    drafter_dir = tmp_path / "other-drafter"
    make_drafter(other, "eagle3").save_pretrained(drafter_dir)
    with pytest.raises(ValueError, match="drafter/target mismatch.*layer count of 6"):
        main(["bench", "--target", str(target_dir), "--drafter", str(drafter_dir), "--prompts", str(prompts)])
