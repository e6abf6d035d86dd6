"""`hf-eagle31 bench`: forward-log tau equals the generator's stats, JSON shape of a CLI run on saved tiny models."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_eagle31.cli import main
from hf_eagle31.errors import InputError
from hf_eagle31.evaluation import TargetForwardTimer, tau_from_forwards, timed_generate
from hf_eagle31.evaluation.batch_bench import batch_benchmark, format_batch_report, left_padded_batches
from hf_eagle31.evaluation.bench import (
    METHODS,
    DrafterForwardTimer,
    bare_forward_times,
    benchmark,
    format_profile,
    format_report,
    profile_drafter,
)
from hf_eagle31.modeling.batched_decoding import BATCH_TOKEN_BUDGET, batch_draft_length

from conftest import TinyCliSetup, make_drafter, save_tiny_setup, tiny_chat_tokenizer, tiny_target


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
    report = benchmark(
        target,
        drafter,
        prompts,
        max_new_tokens=20,
        num_assistant_tokens=3,
        prompt_lookup_tokens=4,
        warmup_tokens=4,
        progress=False,
    )
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
    cli = TinyCliSetup(tmp_path)
    out = tmp_path / "bench.json"
    rc = main(cli.argv("bench", max_new_tokens=12, num_assistant_tokens=3, num_prompts=2, profile=True, json=str(out)))
    assert rc == 0
    report = json.loads(out.read_text())
    assert [r["method"] for r in report["results"]] == ["plain", "prompt_lookup", "drafter"]
    for r in report["results"]:
        assert isinstance(r["tokens_per_s"], float) and r["tokens_per_s"] > 0
        assert len(r["tokens_per_s_per_pass"]) == 3  # --repeats defaults to 3
        low, high = r["tokens_per_s_range"]
        assert low <= r["tokens_per_s"] <= high and r["speedup_vs_plain_range"][0] <= r["speedup_vs_plain"]
        assert r["tau"] is None or isinstance(r["tau"], float)
        assert set(r["time_breakdown_s"]) == {"target_forwards", "drafter_forwards", "other"}
    assert isinstance(report["results"][2]["tau"], float)
    assert report["outputs_identical"] is True and len(report["per_prompt"]) == 2
    assert report["settings"]["prompt_ids"] == ["p0", "p1"] and report["settings"]["repeats"] == 3
    calibration = report["calibration"]
    assert [s["label"] for s in calibration["samples"]] == [
        "before",
        "after pass 1",
        "after pass 2",
        "after pass 3",
        "after profile",
    ]
    assert calibration["workload"].startswith("target forward of 32 tokens")
    assert len(calibration["load_average_at_start"]) == 3 and isinstance(calibration["reliable"], bool)
    profile = report["profile"]
    assert profile["num_assistant_tokens"] == 3 and set(profile["bare"]["target_ms"]) == {"1", "2", "3", "4"}
    assert profile["achieved_speedup"] == pytest.approx(report["results"][2]["speedup_vs_plain"])
    printed = capsys.readouterr().out
    assert "greedy outputs identical across methods: yes" in printed and "calibration (target forward" in printed
    assert "| drafter chain step |" in printed and "ceiling speed-up at τ" in printed


def test_bench_rejects_mismatched_drafter(tmp_path, capsys):
    _, _, target_dir, _, prompts = save_tiny_setup(tmp_path, variants=())
    other = tiny_target(num_hidden_layers=6)
    drafter_dir = tmp_path / "other-drafter"
    make_drafter(other, "eagle3").save_pretrained(drafter_dir)
    assert main(["bench", "--target", str(target_dir), "--drafter", str(drafter_dir), "--prompts", str(prompts)]) == 2
    assert re.search(
        r"^hf-eagle31 bench: error: .*drafter/target mismatch.*layer count of 6", capsys.readouterr().err, re.M
    )


def test_benchmark_repeats_report_median_and_range(target):
    drafter = make_drafter(target, "eagle3.1", seed=2)
    report = benchmark(
        target,
        drafter,
        [[5, 6, 7, 8] * 3],
        max_new_tokens=10,
        num_assistant_tokens=2,
        prompt_lookup_tokens=3,
        warmup_tokens=2,
        progress=False,
        repeats=3,
    )
    assert report["repeats"] == 3 and report["outputs_identical"] and report["calibration"] is None
    for r in report["results"]:
        speeds = r["tokens_per_s_per_pass"]
        assert len(speeds) == 3 and r["tokens_per_s"] == pytest.approx(sorted(speeds)[1])
        assert r["tokens_per_s_range"] == [min(speeds), max(speeds)]
        assert r["new_tokens"] == 10  # counts are per pass
    plain = report["results"][0]
    assert plain["speedup_vs_plain"] == pytest.approx(1.0) and plain["target_forwards"] == 10


@pytest.mark.parametrize("variant", ["eagle3.1", "mtp"])
def test_drafter_forward_timer_sorts_feed_and_chain_steps(target, variant):
    drafter = make_drafter(target, variant, seed=3)
    ids = torch.randint(0, 64, (1, 6))
    hidden = target(ids, output_hidden_states=True).hidden_states
    features = [hidden[i] for i in drafter.config.target_layer_ids]
    with torch.no_grad(), DrafterForwardTimer(drafter) as timer:
        fed = drafter(ids, target_hidden_states=features)
        drafter(ids[:, :1], hidden_states=fed.next_hidden[:, -1:], cache=fed.cache)
        drafter(ids[:, :1], fed.next_hidden[:, -1:])  # positional hidden_states: still a chain step
    assert [len(timer.times_s[k]) for k in ("feed", "chain", "other")] == [1, 2, 0]
    assert all(t > 0 for t in timer.times_s["feed"] + timer.times_s["chain"])
    drafter(ids, target_hidden_states=features)  # hooks removed on exit
    assert len(timer.times_s["feed"]) == 1


def test_bare_timings_are_interleaved():
    """Each round times every workload once, in turn (one untimed round first), so a drift hits all of them alike."""
    from hf_eagle31.evaluation.bench import _interleaved_median_ms

    order = []
    workloads = {
        name: (lambda name=name: order.append(name), lambda name=name: order.append(f"reset {name}"))
        for name in ("a", "b", "c")
    }
    medians = _interleaved_median_ms(workloads, repeats=2, cuda=False)
    assert sorted(medians) == ["a", "b", "c"] and all(ms >= 0 for ms in medians.values())
    assert order == ["a", "reset a", "b", "reset b", "c", "reset c"] * 3


@pytest.mark.parametrize("variant", ["eagle3.1", "mtp"])
def test_bare_forward_times(target, variant):
    drafter = make_drafter(target, variant, seed=3)
    bare = bare_forward_times(target, drafter, list(range(30)), context_length=20, max_new_tokens=4, repeats=3)
    assert bare["context_tokens"] == 20 and sorted(bare["target_ms"]) == [1, 2, 3, 4]
    assert all(ms > 0 for ms in bare["target_ms"].values()) and bare["drafter_step_ms"] > 0
    read = [*drafter.layers, drafter.norm, drafter.lm_head]  # not the embeddings, not the feature projection
    expected = sum(p.numel() * p.element_size() for m in read for p in m.parameters()) / 1e6
    assert bare["drafter_step_weight_mb"] == pytest.approx(expected)
    assert expected < sum(p.numel() * p.element_size() for p in drafter.parameters()) / 1e6
    with pytest.raises(ValueError, match="needs 24 token ids, got 10"):
        bare_forward_times(target, drafter, list(range(10)), context_length=20, max_new_tokens=4)


def test_profile_splits_one_run_per_cycle(target):
    drafter = make_drafter(target, "eagle3.1", seed=2)
    prompts = [[5, 6, 7, 8] * 4, [9, 10, 11] * 5]
    profile = profile_drafter(
        target, drafter, prompts, max_new_tokens=24, num_assistant_tokens=3, achieved_speedup=0.5, repeats=3
    )
    assert profile["num_assistant_tokens"] == 3 and profile["prompts"] == 2 and profile["cycles"] >= 2 * 24 // 4
    parts = profile["target"]
    assert parts[0]["new_tokens"] == "prefill" and parts[0]["calls"] == 2
    by_tokens = {p["new_tokens"]: p for p in parts}
    # a cycle is a forward that verified candidates: K + 1 = 4 new tokens, fewer near max_new_tokens
    assert sum(p["calls"] for n, p in by_tokens.items() if n != "prefill" and n > 1) == profile["cycles"]
    assert by_tokens[4]["calls"] >= profile["cycles"] - 2 * 3
    drafter_parts = profile["drafter"]
    # every drafter forward of the generator went through the hooks: a feed per target forward after the prefill
    assert drafter_parts["forwards_seen_by_hooks"] == drafter_parts["forwards_counted_by_generator"]
    assert drafter_parts["feed"]["calls"] == sum(p["calls"] for p in parts) - 2
    assert drafter_parts["chain_step"]["calls"] > 0 and drafter_parts["chain_step"]["ms_per_call"] > 0
    # the parts add up to the wall time
    total = (
        sum(p["total_s"] for p in parts)
        + drafter_parts["feed"]["total_s"]
        + drafter_parts["chain_step"]["total_s"]
        + drafter_parts["other"]["total_s"]
        + profile["glue"]["total_s"]
    )
    assert total == pytest.approx(profile["wall_s"])
    assert sum(p["share_of_wall"] for p in parts) < 1
    bare = profile["bare"]
    t = bare["target_ms"]
    assert sorted(t) == [1, 2, 3, 4] and bare["context_tokens"] == round((16 + 12 + 15 + 12) / 2)
    # the ceiling charges each cycle its own verification and the drafter forwards it ran: at a constant K that is
    # tau * t(1) / (t(K+1) + K * t_step) up to the last cycles cut short by max_new_tokens
    verify = sum(t[n] * p["calls"] for n, p in by_tokens.items() if n != "prefill" and n > 1) / profile["cycles"]
    forwards = drafter_parts["forwards_counted_by_generator"] / profile["cycles"]
    ceiling = profile["tau"] * t[1] / (verify + forwards * bare["drafter_step_ms"])
    assert profile["ceiling_speedup"] == pytest.approx(ceiling)
    assert profile["fraction_of_ceiling"] == pytest.approx(0.5 / ceiling)
    assert abs(forwards - 3) < 0.5 and profile["mean_draft_length"] == pytest.approx(3, abs=0.5)
    # a rule that only stops drafts early at best verifies 2 tokens a cycle with the feed as the only drafter forward
    bound = (verify + forwards * bare["drafter_step_ms"]) / (t[2] + bare["drafter_step_ms"])
    assert profile["stopping_rule_bound"] == pytest.approx(bound)
    assert "stopping drafts early" in format_profile(profile)


def test_benchmark_compares_drafting_policies(target):
    """Each policy is one more method; every one stays greedy-exact; confidence and copy act as documented."""
    from hf_eagle31.evaluation.bench import DRAFTING_POLICIES, drafting_policy

    drafter = make_drafter(target, "eagle3.1", seed=2)
    with torch.no_grad():
        drafter.lm_head.weight.mul_(0.0)  # a uniform drafter: always unsure
    prompts = [[5, 6, 7, 8] * 4, [9, 10, 11] * 5]
    policies = {name: drafting_policy(name, confidence_threshold=0.5, copy_tokens=4) for name in DRAFTING_POLICIES}
    report = benchmark(
        target,
        drafter,
        prompts,
        max_new_tokens=16,
        num_assistant_tokens=3,
        warmup_tokens=2,
        progress=False,
        policies=policies,
    )
    assert report["outputs_identical"]
    by_method = {r["method"]: r for r in report["results"]}
    assert list(by_method) == [*METHODS, *(f"drafter:{name}" for name in DRAFTING_POLICIES)]
    assert by_method["drafter:constant"]["drafted_per_cycle"] > by_method["drafter:confidence"]["drafted_per_cycle"]
    assert by_method["drafter:confidence"]["drafted_per_cycle"] == pytest.approx(1.0)  # unsure: one token a cycle
    assert (
        by_method["drafter:constant"]["copied_cycles"] == 0
        and by_method["drafter:confidence+copy"]["copied_cycles"] > 0
    )
    with pytest.raises(ValueError, match="unknown drafting policy 'fast'"):
        drafting_policy("fast")


def test_drafting_policy_names_its_own_threshold():
    """`confidence@T` sets that policy's threshold (so one run compares thresholds); anything else is refused."""
    from hf_eagle31.evaluation.bench import drafting_policy

    assert drafting_policy("confidence@0.2", confidence_threshold=0.5)["assistant_confidence_threshold"] == 0.2
    both = drafting_policy("confidence+copy@0.7", copy_tokens=4)
    assert both["assistant_confidence_threshold"] == 0.7 and both["prompt_lookup_num_tokens"] == 4
    assert drafting_policy("confidence", confidence_threshold=0.5)["assistant_confidence_threshold"] == 0.5
    for bad in ("copy@0.2", "confidence@x", "confidence@1.5", "confidence@"):
        with pytest.raises(ValueError, match="only a confidence policy takes @<threshold>"):
            drafting_policy(bad)


def test_benchmark_profiles_a_chosen_policy(target):
    """`profile_policy` profiles that policy's runs (its draft lengths) and sets them against its own speed-up."""
    from hf_eagle31.evaluation.bench import drafting_policy

    drafter = make_drafter(target, "eagle3.1", seed=2)
    with torch.no_grad():
        drafter.lm_head.weight.mul_(0.0)  # a uniform drafter: the confidence policy drafts one token a cycle
    drafter.generation_config.assistant_confidence_threshold = 0.5  # as shipped: confidence-bounded
    prompts = [[5, 6, 7, 8] * 4]
    policies = {"constant": drafting_policy("constant")}
    report = benchmark(
        target,
        drafter,
        prompts,
        max_new_tokens=16,
        num_assistant_tokens=3,
        warmup_tokens=2,
        progress=False,
        policies=policies,
        profile=True,
        profile_policy="constant",
    )
    profile = report["profile"]
    by_method = {r["method"]: r for r in report["results"]}
    assert profile["method"] == "drafter:constant" and by_method["drafter"]["drafted_per_cycle"] == pytest.approx(1.0)
    assert profile["mean_draft_length"] > 2.5  # the constant policy's chains, not the shipped configuration's
    assert profile["achieved_speedup"] == by_method["drafter:constant"]["speedup_vs_plain"]
    # with a constant policy in the run, every drafter row carries its ratio to it, pass by pass
    assert by_method["drafter:constant"]["speedup_vs_constant"] == pytest.approx(1.0)
    shipped = by_method["drafter"]
    expected = shipped["tokens_per_s_per_pass"][0] / by_method["drafter:constant"]["tokens_per_s_per_pass"][0]
    assert shipped["speedup_vs_constant"] == pytest.approx(expected)
    assert "speedup_vs_constant" not in by_method["plain"] and "speedup_vs_constant" not in by_method["prompt_lookup"]
    text = format_report(report)
    assert "| method | tok/s | × plain | × constant | tau |" in text
    assert "profile: drafter:constant at K=3" in text
    varied = {**profile, "num_assistant_tokens": 1, "longest_draft_length": 5, "mean_draft_length": 1.7}
    assert "with drafts of ≤5 tokens (mean 1.70, most often 1)" in format_profile(varied)
    with pytest.raises(ValueError, match="add it to --policies"):
        benchmark(target, drafter, prompts, max_new_tokens=4, progress=False, profile=True, profile_policy="copy")


def test_bench_cli_drafter_dtype(tmp_path):
    """`--drafter-dtype bfloat16` beside an fp32 target: the drafter runs in bf16 and greedy output stays exact."""
    cli = TinyCliSetup(tmp_path)
    out = tmp_path / "bench.json"
    rc = main(cli.argv("bench", max_new_tokens=10, num_prompts=2, repeats=1, drafter_dtype="bfloat16", json=str(out)))
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["outputs_identical"] and report["settings"]["drafter_dtype"] == "bfloat16"


@pytest.mark.slow  # minutes of torch.compile on a CPU
def test_bench_cli_compile_drafter_and_target(tmp_path, monkeypatch):
    """`--compile-drafter` runs the drafter's forward through torch.compile and `--compile-target` makes every method
    decode with a static target cache and generate's compiled target forward (greedy output stays exact for plain,
    prompt lookup and the drafter); without a C++ compiler for the CPU backend (or, for the target, without
    transformers' static-cache rollback, 5.24+) each is refused in one line."""
    import shutil

    from hf_eagle31.evaluation.timing import static_cache_rollback_supported

    cli = TinyCliSetup(tmp_path)
    command = cli.argv("bench", max_new_tokens=6, num_prompts=1, repeats=1)
    if not static_cache_rollback_supported():
        assert main(command + ["--compile-target"]) == 2
    elif shutil.which("g++") or shutil.which("c++") or shutil.which("clang++"):
        out = tmp_path / "bench.json"
        assert main(command + ["--compile-drafter", "--compile-target", "--json", str(out)]) == 0
        report = json.loads(out.read_text())
        assert report["outputs_identical"]
        assert report["settings"]["compile_drafter"] is True and report["settings"]["compile_target"] is True
        assert [r["method"] for r in report["results"]][:2] == ["plain", "plain:eager"]
    assert main(command + ["--compile-target", "--profile"]) == 2
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(command + ["--compile-drafter"]) == 2
    assert main(command + ["--compile-target"]) == 2


def test_machine_noise_example(tmp_path):
    """benchmarks/machine_noise.py samples the bench calibration back to back and reports their drift."""
    _, _, target_dir, _, _ = save_tiny_setup(tmp_path)
    out = tmp_path / "noise.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "machine_noise.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--target",
            str(target_dir),
            "--dtype",
            "float32",
            "--threads",
            "1",
            "--samples",
            "3",
            "--gap",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [s["label"] for s in report["samples"]] == ["sample 1", "sample 2", "sample 3"]
    assert len(report["consecutive_drifts"]) == 2 and report["drift"] >= max(report["consecutive_drifts"])
    assert "drift" in done.stdout and "bench flags above 15%" in done.stdout


def test_static_cache_warm_up_reaches_every_graph(target, monkeypatch):
    """With a static (compiled) target cache every method is warmed up once more on 2 new tokens, which ends on a
    1-token forward with that method's own arguments: no graph is first compiled inside a timed pass."""
    import hf_eagle31.evaluation.bench as bench_module
    from hf_eagle31.evaluation.timing import static_cache_rollback_supported

    if not static_cache_rollback_supported():
        pytest.skip("static-cache assisted decoding needs transformers >= 5.24")
    calls = []
    original = bench_module.timed_generate

    def recording(*args, **kwargs):
        calls.append(kwargs["max_new_tokens"])
        return original(*args, **kwargs)

    monkeypatch.setattr(bench_module, "timed_generate", recording)
    drafter = make_drafter(target, "eagle3.1", seed=2)
    prompts = [[5, 6, 7, 8] * 4]
    for static_cache in (False, True):
        calls.clear()
        report = benchmark(
            target, drafter, prompts, max_new_tokens=6, warmup_tokens=4, progress=False, static_cache=static_cache
        )
        methods = len(report["results"])
        warmups = [4, 2] if static_cache else [4]
        assert calls[: len(warmups) * methods] == warmups * methods
        assert calls.count(6) == methods  # then one timed pass


# ---------------------------------------------------------------------------------------------- batches


def _single_greedy_lengths(target, prompts, max_new_tokens):
    """Each prompt's greedy continuation length, one unpadded prompt at a time (eos included, nothing after it)."""
    lengths = []
    for ids in prompts:
        out = target.generate(
            torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0, top_k=None, top_p=None
        )
        lengths.append(out.shape[1] - len(ids))
    return lengths


def test_batch_benchmark_counts_real_tokens_and_chooses_k_by_the_rule():
    """Rows that stop at eos count only up to it; every batch size and method gives plain batched greedy's tokens;
    each budget method drafts the K its rule gives (measured from the drafter's stats), once per distinct K, and the
    package's rule is restored afterwards."""
    from hf_eagle31.modeling import batched_decoding

    tokenizer = tiny_chat_tokenizer()
    target = tiny_target()
    drafter = make_drafter(target, "eagle3.1", seed=2)
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 64, (n,), generator=generator).tolist() for n in (5, 9, 7, 12, 6)]
    assert _single_greedy_lengths(target, prompts, 16) == [16] * 5
    # an eos that row 0 (and maybe others) emits early: its row must end there while the others go on
    row0 = target.generate(torch.tensor([prompts[0]]), max_new_tokens=16, do_sample=False, pad_token_id=0)[0, 5:]
    target.generation_config.eos_token_id = int(row0[3])
    lengths = _single_greedy_lengths(target, prompts, 16)
    assert lengths[0] == 4 and sum(lengths) < 5 * 16  # the eos cut row 0 (and maybe others)
    rule = batched_decoding.batch_draft_length
    report = batch_benchmark(
        target,
        drafter,
        tokenizer,
        prompts,
        [1, 2, 4],
        max_new_tokens=16,
        num_assistant_tokens=3,
        budgets=[4, 32],
        warmup_tokens=2,
        progress=False,
    )
    assert batched_decoding.batch_draft_length is rule
    assert report["outputs_identical"] and report["mismatched"] == []
    by = {(r["batch_size"], r["method"]): r for r in report["results"]}
    # B = 1: the drafter's own policy; B = 4: budget 4 gives the shipped budget's K (0), so it is not run again
    assert BATCH_TOKEN_BUDGET < 4
    assert list(by) == [
        (1, "plain"),
        (1, "drafter"),
        (2, "plain"),
        (2, "drafter"),
        (2, "drafter:budget=4"),
        (2, "drafter:budget=32"),
        (4, "plain"),
        (4, "drafter"),
        (4, "drafter:budget=32"),
    ]
    for (size, method), r in by.items():
        used = len(prompts) // size * size  # a shorter last batch is left out
        assert r["prompts"] == used and r["new_tokens"] == sum(lengths[:used]) and r["identical_to_plain"]
        assert r["tokens_per_s"] > 0 and r["tokens_per_s"] == pytest.approx(r["new_tokens"] / r["wall_s"])
        if method == "plain":
            assert r["tau"] is None and r["speedup_vs_plain"] == pytest.approx(1.0)
            continue
        if size > 1:
            budget = int(method.split("=")[1]) if "=" in method else BATCH_TOKEN_BUDGET
            assert r["rule_draft_length"] == batch_draft_length(size, 3, budget) == r["draft_length"]
            assert r["policy"] == "batched chain" and r["budget"] == budget
        assert (r["tau"] is None) == (r["draft_length"] == 0) == (r["cycles"] == 0)
        if r["tau"] is not None:
            assert 1 <= r["tau"] <= r["draft_length"] + 1
    assert [by[2, m]["draft_length"] for m in ("drafter", "drafter:budget=4", "drafter:budget=32")] == [0, 1, 3]
    assert by[4, "drafter:budget=32"]["draft_length"] == 3
    text = format_batch_report(report)
    assert "| 4 | drafter:budget=32 |" in text and "identical to plain batched greedy: yes" in text


def test_left_padded_batches_pad_on_the_left_and_restore_the_tokenizer():
    tokenizer = tiny_chat_tokenizer()
    tokenizer.padding_side = "right"
    batches = left_padded_batches(tokenizer, [[5, 6], [7, 8, 9], [10]], 2)
    assert [b["input_ids"].tolist() for b in batches] == [
        [[tokenizer.eos_token_id, 5, 6], [7, 8, 9]]
    ]  # eos pads; tail left out
    assert batches[0]["attention_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert tokenizer.padding_side == "right" and tokenizer.pad_token is None


def test_batch_benchmark_refuses_bad_sizes_and_budgets(target):
    drafter = make_drafter(target, "eagle3.1")
    for sizes, budgets, message in (
        ([0], None, "batch size 0"),
        ([2, 1.5], None, "batch size 1.5"),
        ([], None, "no batch size"),
        ([2], [0], "batch token budget 0"),
        ([3], None, "batch size 3 needs at least as many prompts, got 2"),
    ):
        with pytest.raises(InputError, match=message):
            batch_benchmark(
                target, drafter, tiny_chat_tokenizer(), [[5, 6]] * 2, sizes, budgets=budgets, progress=False
            )


def test_bench_cli_batch_sizes_json_shape(tmp_path, capsys):
    cli = TinyCliSetup(tmp_path)
    out = tmp_path / "bench.json"
    argv = cli.argv("bench", max_new_tokens=8, num_prompts=3, batch_size="1,3", repeats=2, json=str(out))
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert [(r["batch_size"], r["method"]) for r in report["results"]] == [
        (1, "plain"),
        (1, "drafter"),
        (3, "plain"),
        (3, "drafter"),
    ]
    for r in report["results"]:
        assert r["new_tokens"] == 3 * 8 and len(r["tokens_per_s_per_pass"]) == 2  # no eos: every row runs to 8
    assert report["outputs_identical"] and report["settings"]["batch_sizes"] == [1, 3]
    assert [s["label"] for s in report["calibration"]["samples"]] == ["before", "after pass 1", "after pass 2"]
    printed = capsys.readouterr().out
    assert "| 3 | drafter |" in printed and "greedy outputs identical to plain batched greedy: yes" in printed


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch-size", "0"], r"argument --batch-size: must be >= 1, got 0"),
        (["--batch-size", "4,x"], r"argument --batch-size: invalid integer 'x'"),
        (["--batch-size", "2.5"], r"argument --batch-size: invalid integer '2.5'"),
        (["--batch-size", "4", "--batch-token-budgets", "-8"], r"--batch-token-budgets: must be >= 1, got -8"),
        (["--batch-token-budgets", "8"], r"--batch-token-budgets.*compares budgets of batches"),
        (["--batch-size", "4", "--profile"], r"--profile.*--batch-size|--batch-size.*--profile"),
        (["--batch-size", "4", "--policies", "constant"], r"--batch-size cannot be combined with --policies"),
    ],
)
def test_bench_cli_refuses_bad_batch_options(tmp_path, capsys, flags, message):
    cli = TinyCliSetup(tmp_path)
    try:
        rc = main(cli.argv("bench", max_new_tokens=4) + flags)
    except SystemExit as exit:  # argparse refuses a malformed value: usage, then one `error:` line
        rc = exit.code
    assert rc == 2
    err = capsys.readouterr().err
    assert re.search(r"^hf-eagle31 bench: error: .*" + message, err, re.M) and err.count("error:") == 1


def test_batch_benchmark_shrinks_tree_nodes_by_the_rule(target):
    """A tree drafter's greedy batches draft trees per row: the rule (and each budget method) sets the nodes per row
    from the tree's total, and every row stays plain batched greedy's."""
    drafter = make_drafter(target, "eagle3.1", seed=2)
    drafter.generation_config.update(draft_tree=True, tree_depth=2, tree_topk=2, tree_total_tokens=5)
    drafter.generation_config.tree_min_probability = 0.0
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 64, (n,), generator=generator).tolist() for n in (6, 9)]
    report = batch_benchmark(
        target, drafter, tiny_chat_tokenizer(), prompts, [2], max_new_tokens=10, budgets=[4, 32], progress=False
    )
    assert report["drafts_trees"] and report["configured_draft_length"] == 5 and report["outputs_identical"]
    by = {r["method"]: r for r in report["results"]}
    # at B = 2, budget 4: 1 node per row; 32: min(5, 15) = 5 nodes; the shipped budget: none (plain batched steps)
    assert list(by) == ["plain", "drafter", "drafter:budget=4", "drafter:budget=32"]
    assert [by[m]["rule_draft_length"] for m in ("drafter", "drafter:budget=4", "drafter:budget=32")] == [0, 1, 5]
    assert by["drafter:budget=32"]["policy"] == "batched tree" and by["drafter:budget=32"]["tau"] >= 1
    assert by["drafter"]["tau"] is None
