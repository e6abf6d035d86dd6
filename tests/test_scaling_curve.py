"""benchmarks/scaling_curve.py: tokens per checkpoint from the data, the log-linear fit and where it puts tau
targets."""

import importlib.util
import json
import math
from pathlib import Path

import datasets
import pytest


SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling_curve.py"


def load_script():
    spec = importlib.util.spec_from_file_location("scaling_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def eval_json(path, rows):
    results = [
        {"drafter": name, "tau": tau, "acceptance_per_depth": [acc, 0.1], "num_assistant_tokens": 4, "cycles": 100}
        for name, tau, acc in rows
    ]
    path.write_text(json.dumps({"results": results}))
    return str(path)


def test_curve_fit_and_outputs(tmp_path):
    pytest.importorskip("matplotlib")
    curve = load_script()
    data = tmp_path / "data"
    # two rows: 10 and 30 tokens, 4 and 8 of them assistant tokens -> 20 tokens / 6 assistant tokens per row,
    # 40 / 12 a step of batch 2
    datasets.Dataset.from_dict(
        {"input_ids": [[1] * 10, [2] * 30], "loss_mask": [[1] * 4 + [0] * 6, [1] * 8 + [0] * 22]}
    ).save_to_disk(str(data))
    # tau = 1 + 0.5 * log10(tokens / 40): exactly log-linear in tokens seen (batch 2 -> 40 tokens a step)
    rows = [(f"runs/x/checkpoint-{s}", 1 + 0.5 * math.log10(s), 0.2 + 0.01 * s) for s in (1, 10, 100)]
    path = eval_json(tmp_path / "v.json", rows + [("hf_eagle31/drafters/shipped", 1.4, 0.3)])
    out = tmp_path / "scaling"
    curve.main(["--data", str(data), "--batch-size", "2", "--eval", f"e31={path}", "--out", str(out)])
    report = json.loads((tmp_path / "scaling.json").read_text())
    c = report["curves"]["e31"]
    assert [p["step"] for p in c["points"]] == [1, 10, 100] and c["points"][1]["tokens"] == pytest.approx(400)
    assert c["points"][2]["assistant_tokens"] == pytest.approx(1200) and c["references"][0]["tau"] == 1.4
    fit = c["fit"]["tau = a + b * log10(tokens)"]
    assert fit["b"] == pytest.approx(0.5) and c["fit"]["tau_gain_per_doubling"] == pytest.approx(0.5 * math.log10(2))
    # tau 2.5 needs log10(tokens / 40) = 3 -> 40,000 tokens
    assert c["tokens_for_tau"]["2.5"] == pytest.approx(40_000)
    assert (tmp_path / "scaling.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        curve.main(["--data", str(data), "--batch-size", "2", "--eval", "no-equals-sign", "--out", str(out)])
