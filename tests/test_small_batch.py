"""`small_batch_linears`: the transposed product for 2..max_rows rows equals F.linear, is undone on exit, touches
only fp32 CPU nn.Linear layers, and keeps assisted greedy decoding identical to plain greedy."""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hf_eagle31 import small_batch_linears
from hf_eagle31.small_batch import disable, enable, is_enabled, wanted

from conftest import make_drafter, tiny_target


@pytest.mark.parametrize("bias", [False, True])
def test_product_equals_linear_for_every_row_count(bias):
    torch.manual_seed(0)
    layer = nn.Linear(24, 40, bias=bias)
    inputs = [torch.randn(1, n, 24) for n in range(1, 15)] + [torch.randn(2, 3, 24), torch.randn(5, 24)]
    expected = [F.linear(x, layer.weight, layer.bias) for x in inputs]
    with small_batch_linears(layer, max_rows=12):
        got = [layer(x) for x in inputs]
        assert is_enabled(layer)
    for x, e, g in zip(inputs, expected, got):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)
    assert not is_enabled(layer) and "forward" not in vars(layer)


def test_only_fp32_cpu_plain_linears_and_nothing_already_replaced():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4).to(torch.bfloat16), nn.Embedding(3, 4), nn.Linear(4, 4))
    custom = model[3]
    custom.forward = lambda x: x  # someone else's replacement (e.g. an offload hook) is left alone
    assert enable(model) == 1 and is_enabled(model[0]) and not is_enabled(model[1]) and not is_enabled(custom)
    assert disable(model) == 1 and not is_enabled(model)
    assert vars(custom)["forward"] is not None  # untouched
    with pytest.raises(ValueError, match="max_rows must be >= 2"):
        enable(model, max_rows=1)


def test_context_manager_keeps_an_earlier_enable():
    layer = nn.Linear(4, 4)
    enable(layer)
    with small_batch_linears(layer):
        pass
    assert is_enabled(layer)  # the caller's own enable outlives the context
    disable(layer)


def test_wanted(monkeypatch):
    from hf_eagle31 import small_batch

    for faster in (True, False):  # auto follows the measurement on fp32 CPU models, and is off for anything else
        monkeypatch.setattr(small_batch, "product_is_faster", lambda model, faster=faster: faster)
        assert wanted("auto", nn.Linear(2, 2)) is faster and not wanted("auto", nn.Linear(2, 2).to(torch.bfloat16))
    assert wanted("on", nn.Linear(2, 2).to(torch.bfloat16)) and not wanted("off", nn.Linear(2, 2))
    with pytest.raises(ValueError, match="use auto, on or off"):
        wanted("yes", nn.Linear(2, 2))


def test_product_is_faster_times_both_paths(monkeypatch):
    from hf_eagle31 import small_batch

    calls = {"stock": 0, "product": 0}

    def count(name, delay):
        def run(*args):
            calls[name] += 1
            time.sleep(delay)
            return args[-1]

        return run

    model = nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 8), nn.Linear(8, 16))  # two distinct shapes
    monkeypatch.setattr(small_batch.F, "linear", count("stock", 0.002))
    monkeypatch.setattr(small_batch, "_product", count("product", 0.0))
    assert small_batch.product_is_faster(model, repeats=3)
    assert calls == {"stock": 8, "product": 8}  # (3 rounds + 1 warm-up) x 2 shapes each
    monkeypatch.setattr(small_batch, "_product", count("product", 0.004))
    assert not small_batch.product_is_faster(model, repeats=3)
    assert not small_batch.product_is_faster(nn.Linear(4, 4).to(torch.bfloat16))  # nothing eligible


@pytest.mark.parametrize("policy", [{}, {"assistant_confidence_threshold": 0.2, "prompt_lookup_num_tokens": 4}])
def test_assisted_greedy_stays_identical_to_plain(policy):
    target = tiny_target()
    drafter = make_drafter(target, "eagle3.1", seed=3)
    ids = torch.tensor([[3, 9, 4, 7, 3, 9, 4, 7, 5, 11, 2, 9]])
    plain = target.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
    with small_batch_linears(target):
        assisted = target.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=24,
            do_sample=False,
            assistant_model=drafter,
            num_assistant_tokens=4,
            **policy,
        )
        assert drafter.last_speculation_stats.cycles > 0
    assert torch.equal(plain, assisted)


@pytest.mark.parametrize(
    "setting, faster, expected", [("auto", True, True), ("auto", False, False), ("off", True, False)]
)
def test_bench_cli_small_batch_linears(tmp_path, monkeypatch, setting, faster, expected):
    """`--small-batch-linears auto` is on for an fp32 CPU target where the product measured faster (recorded in the
    report); outputs stay exact."""
    import json

    from hf_eagle31 import small_batch
    from hf_eagle31.cli import main

    from conftest import TinyCliSetup

    monkeypatch.setattr(small_batch, "product_is_faster", lambda model: faster)
    cli = TinyCliSetup(tmp_path)
    out = tmp_path / "bench.json"
    rc = main(
        cli.argv("bench", max_new_tokens=10, num_prompts=2, repeats=1, small_batch_linears=setting, json=str(out))
    )
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["outputs_identical"] and report["settings"]["small_batch_linears"] is expected
