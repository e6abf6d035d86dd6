"""Calibration of speed measurements: drift verdict on synthetic timings, a real CPU hog is flagged, `--strict`
refuses a flagged `bench` / `eval` run, repeated passes report median and spread."""

import json
import os
import subprocess
import sys

import pytest

import hf_eagle31.evaluation.calibration as calibration_module
from hf_eagle31.cli import main
from hf_eagle31.data.suites import EvalPrompt
from hf_eagle31.evaluation import evaluate, format_table
from hf_eagle31.evaluation.calibration import (
    EXIT_BUSY,
    Calibration,
    MachineBusyError,
    format_calibration,
    matmul_workload,
    median_range,
    relative_drift,
)

from conftest import TinyCliSetup, make_drafter, tiny_chat_tokenizer, tiny_target


QUIET = (0.0, 0.0, 0.0)


def quiet_calibration(**kw):
    calibration = Calibration(workload=lambda: None, **kw)
    calibration.load_at_start = QUIET
    return calibration


def test_relative_drift_and_median_range():
    assert relative_drift([]) == 0.0 and relative_drift([0.01]) == 0.0
    assert relative_drift([0.010, 0.0105, 0.010]) == pytest.approx(0.05)
    assert relative_drift([0.012, 0.010]) == pytest.approx(0.2)  # direction does not matter: max / min - 1
    assert median_range([3.0, 1.0, 2.0]) == (2.0, [1.0, 3.0])
    assert median_range([1.0, None]) == (None, None) and median_range([]) == (None, None)


def test_steady_samples_are_reliable():
    calibration = quiet_calibration()
    calibration.record("before", [0.0100, 0.0101, 0.0300, 0.0099, 0.0100], load=QUIET)  # one outlier: median
    calibration.record("after pass 1", [0.0104] * 5, load=QUIET)
    calibration.record("after pass 2", [0.0102] * 5, load=QUIET)
    assert calibration.drift == pytest.approx(0.04)
    assert calibration.reliable and calibration.problems() == [] and calibration.warning() is None
    calibration.check(strict=True)  # nothing to refuse
    summary = calibration.summary()
    assert summary["reliable"] is True and summary["warning"] is None
    assert [s["label"] for s in summary["samples"]] == ["before", "after pass 1", "after pass 2"]
    assert summary["samples"][0]["ms"] == pytest.approx(10.0)
    assert summary["usable_cpus"] >= 1 and summary["drift_threshold"] == 0.15
    assert "WARNING" not in format_calibration(summary)
    json.dumps(summary)  # JSON-ready


def test_drift_over_threshold_is_flagged_and_strict_refuses():
    calibration = quiet_calibration(drift_threshold=0.15)
    calibration.record("before", [0.010] * 5, load=QUIET)
    calibration.record("after pass 1", [0.0114] * 5, load=QUIET)  # 14%: still steady
    assert calibration.reliable
    calibration.record("after pass 2", [0.0125] * 5, load=QUIET)  # 25%
    assert not calibration.reliable
    warning = calibration.warning()
    assert warning.startswith("calibration drifted 25% (10.00 ms before vs 12.50 ms after pass 2")
    assert warning.endswith("— machine busy, numbers unreliable")
    calibration.check(strict=False)  # flag only
    refused = r"refused \(--strict\): calibration drifted 25%.*rerun on a quiet"
    with pytest.raises(MachineBusyError, match=refused) as info:
        calibration.check(strict=True)
    assert "\n" not in str(info.value)
    assert f"WARNING: {warning}" in format_calibration(calibration.summary())


def test_load_above_the_cpu_count_is_flagged():
    calibration = quiet_calibration()
    calibration.load_at_start = (calibration.cpus + 0.5, 1.0, 1.0)
    calibration.record("before", [0.01], load=QUIET)
    calibration.record("after pass 1", [0.01], load=QUIET)
    assert not calibration.reliable and "usable CPUs at the start" in calibration.warning()
    with pytest.raises(MachineBusyError, match="load average .* usable CPUs at the start"):
        calibration.check_load_at_start(strict=True)
    calibration.check_load_at_start(strict=False)
    with pytest.raises(ValueError, match="drift threshold must be > 0"):
        Calibration(drift_threshold=0)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_cpu_hog_during_the_measurement_is_flagged():
    """Busy-looping processes share this process's CPU during the "after" sample (all pinned to one CPU, so the
    number of cores does not matter): the single-threaded matmul gets at most a fifth of that CPU, against at
    least a third in the "before" sample even when two other jobs already shared it, far beyond the 15% threshold."""
    before_affinity = os.sched_getaffinity(0)
    cpu = min(before_affinity)
    hogs = []
    try:
        os.sched_setaffinity(0, {cpu})
        calibration = Calibration(matmul_workload(128), repeats=3, min_time_s=0.05)
        calibration.sample("before")
        code = f"import os, sys\nos.sched_setaffinity(0, {{{cpu}}})\nprint('ready', flush=True)\nwhile True: pass\n"
        for _ in range(4):
            hogs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True))
        for hog in hogs:
            assert hog.stdout.readline().strip() == "ready"
        calibration.sample("after pass 1")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        os.sched_setaffinity(0, before_affinity)
    assert calibration.drift > 0.15, [s.to_dict() for s in calibration.samples]
    assert calibration.samples[1].seconds > calibration.samples[0].seconds
    assert not calibration.reliable and calibration.warning().startswith("calibration drifted")
    assert "machine busy, numbers unreliable" in calibration.warning()


# ---------------------------------------------------------------------------------------------- CLI and passes


@pytest.fixture
def drifting(monkeypatch):
    """Calibration samples of 1, 2, 3, ... ms (a machine getting busier) on a quiet load average."""
    monkeypatch.setattr(calibration_module, "load_average", lambda: QUIET)
    monkeypatch.setattr(
        Calibration, "sample", lambda self, label: self.record(label, [1e-3 * (len(self.samples) + 1)], load=QUIET)
    )


def test_bench_flags_a_drifted_run_and_strict_refuses_it(tmp_path, capsys, drifting):
    cli = TinyCliSetup(tmp_path)
    out = tmp_path / "bench.json"
    command = cli.argv("bench", num_prompts=1, max_new_tokens=8, num_assistant_tokens=2, repeats=2, json=str(out))
    assert main(command) == 0
    report = json.loads(out.read_text())
    cal = report["calibration"]
    assert [s["label"] for s in cal["samples"]] == ["before", "after pass 1", "after pass 2"]
    assert cal["drift"] == pytest.approx(2.0) and cal["reliable"] is False
    assert cal["warning"].startswith("calibration drifted 200%")
    assert "WARNING: calibration drifted 200%" in capsys.readouterr().out

    out.unlink()
    assert main(command + ["--strict"]) == EXIT_BUSY
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith("hf-eagle31 bench: error: measurement refused (--strict): calibration drifted 200%")
    assert "rerun on a quiet machine" in error and not out.exists() and "| method |" not in captured.out


def test_strict_refuses_a_busy_machine_before_measuring(tmp_path, capsys, monkeypatch):
    cli = TinyCliSetup(tmp_path)
    monkeypatch.setattr(calibration_module, "load_average", lambda: (99.0, 99.0, 99.0))
    monkeypatch.setattr(Calibration, "sample", lambda self, label: pytest.fail("measured on a busy machine"))
    rc = main(cli.argv("eval", max_new_tokens=8, strict=True))
    assert rc == EXIT_BUSY
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("hf-eagle31 eval: error: measurement refused (--strict): load average 99.00 >")


def test_eval_cli_reports_calibration_and_spread(tmp_path, capsys, drifting):
    cli = TinyCliSetup(tmp_path)
    out = tmp_path / "eval.json"
    assert main(cli.argv("eval", num_prompts=1, max_new_tokens=8, repeats=2, json=str(out))) == 0
    saved = json.loads(out.read_text())
    assert saved["settings"]["repeats"] == 2 and saved["calibration"]["reliable"] is False
    (result,) = saved["results"]
    assert len(result["tokens_per_s_per_pass"]) == 2 and result["tokens_per_s_range"][0] <= result["tokens_per_s"]
    assert "WARNING: calibration drifted" in capsys.readouterr().out


def test_evaluate_repeats_median_and_spread():
    target, tokenizer = tiny_target(eos_token_id=None), tiny_chat_tokenizer()
    drafters = {"a": make_drafter(target, "eagle3", seed=5), "b": make_drafter(target, "eagle3.1", seed=6)}
    prompts = [
        EvalPrompt(id="p0", suite="toy", source="toy", turns=["w1 w2 w3 w4", "w5 w6"]),
        EvalPrompt(id="p1", suite="toy", source="toy", turns=["w7 w8 w9"]),
    ]
    calibration = quiet_calibration()
    results, runs = evaluate(
        target,
        tokenizer,
        drafters,
        prompts,
        max_new_tokens=8,
        num_assistant_tokens=2,
        progress=False,
        repeats=3,
        calibration=calibration,
    )
    assert [s.label for s in calibration.samples] == ["before", "after pass 1", "after pass 2", "after pass 3"]
    assert len(runs) == 3 * 3 * 2  # passes x turns x drafters
    for r in results:
        mine = [x for x in runs if x["drafter"] == r["drafter"]]
        first = [x["run"] for x in mine if x["repeat"] == 0]
        assert r["num_turns"] == 3 and r["new_tokens"] == sum(len(run.new_tokens) for run in first)
        # every pass drafts the same (greedy), so pass 0's statistics stand for all
        assert all(x["run"].new_tokens == first[i % 3].new_tokens for i, x in enumerate(mine))
        speeds = r["tokens_per_s_per_pass"]
        assert len(speeds) == 3 and r["tokens_per_s"] == pytest.approx(sorted(speeds)[1])
        assert r["tokens_per_s_range"] == [min(speeds), max(speeds)]
        low, high = r["speed_ratio_range"]
        assert low <= r["speed_ratio"] <= high
    assert results[0]["speed_ratio"] == pytest.approx(1.0)
    # turn 2 of every pass sees the same history (pass 0's answer)
    turn2 = [x["input_ids"] for x in runs if x["prompt"] == "p0" and x["turn"] == 2]
    assert len(turn2) == 6 and all(ids == turn2[0] for ids in turn2)
    assert "(" in format_table(results)  # median (min–max)
