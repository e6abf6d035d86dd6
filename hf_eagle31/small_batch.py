# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Cheap verification forwards for fp32 targets on the CPU.

A speculative cycle verifies K+1 tokens in one target forward, and the bet is that this costs about one plain
(1-token) forward. On x86 CPUs with fp32 weights it does not: `nn.Linear` computes x·Wᵀ, and the BLAS kernels serve
a few rows of x badly (measured on SmolLM2-135M, 2 threads: a 4-token forward 1.5× a 1-token one, 3 tokens 2×).
The same product taken as (W·xᵀ)ᵀ reads the weight once for all rows: a 4-token forward then costs 0.94-0.97× a
1-token one (`benchmarks/small_batch_linears.py` measures it on the machine at hand). That was torch 2.5-2.12; with
torch 2.13 the stock kernels serve few rows well on the same machine (a 4-token forward 1.6× a 1-token one stock,
2.2× through the product), so `--small-batch-linears auto` now measures both on the model before choosing.

`small_batch_linears(model)` routes the fp32 CPU `nn.Linear` layers of `model` through that product for inputs of
2..`max_rows` rows, and leaves every other call (1-token steps, prefills, other dtypes and devices) on `F.linear`.
Results equal `F.linear`'s up to fp32 summation order, the same kind of difference there already is between a
1-token step and a K+1-token verification. Use it as a context manager around `generate`, or `enable` / `disable`.
"""

import contextlib
import statistics
import time
import types

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError


# SmolLM2, 2 threads, two runs of benchmarks/small_batch_linears.py: for 2-8 rows the product wins clearly (t(n)/t(1)
# 0.85-1.40 against 1.31-2.09 stock); for 9-12 rows it is within noise of the stock kernel (one run 5-9% faster, the
# other 4% slower at 9); from 13 rows on the stock kernel is as good or better. Prefills keep the stock kernel.
DEFAULT_MAX_ROWS = 12
_MARK = "_hf_eagle31_small_batch_rows"


def _small_batch_forward(self, x):
    rows = x.numel() // x.shape[-1] if x.numel() else 0
    if 1 < rows <= getattr(self, _MARK):
        return _product(self, x.reshape(rows, x.shape[-1])).reshape(*x.shape[:-1], self.out_features)
    return F.linear(x, self.weight, self.bias)


def _eligible(module):
    """A plain fp32 CPU `nn.Linear` whose forward nobody else has replaced (accelerate hooks, another patch)."""
    return (
        type(module) is nn.Linear
        and module.weight.dtype == torch.float32
        and module.weight.device.type == "cpu"
        and "forward" not in vars(module)
    )


def enable(model: nn.Module, max_rows: int = DEFAULT_MAX_ROWS) -> int:
    """Routes `model`'s eligible linear layers through the small-batch product; returns how many it routed."""
    if max_rows < 2:
        raise InputError(f"max_rows must be >= 2 (1-row inputs always keep F.linear), got {max_rows}.")
    count = 0
    for module in model.modules():
        if _eligible(module):
            setattr(module, _MARK, max_rows)
            module.forward = types.MethodType(_small_batch_forward, module)
            count += 1
    return count


def disable(model: nn.Module) -> int:
    """Undoes `enable`; returns how many layers it restored."""
    count = 0
    for module in model.modules():
        if hasattr(module, _MARK):
            delattr(module, _MARK)
            if getattr(vars(module).get("forward"), "__func__", None) is _small_batch_forward:
                del module.forward
            count += 1
    return count


def is_enabled(model: nn.Module) -> bool:
    return any(hasattr(module, _MARK) for module in model.modules())


def wanted(setting: str, model: nn.Module) -> bool:
    """
    The `--small-batch-linears {auto,on,off}` choice. auto = on for an fp32 model on the CPU where the product is
    measurably faster here (`product_is_faster`): whether the stock kernels serve a few rows badly depends on the
    torch build and the CPU (with torch 2.13 on this project's CI machine they no longer do; see the module notes).
    """
    if setting not in ("auto", "on", "off"):
        raise InputError(f"--small-batch-linears {setting!r}: use auto, on or off.")
    if setting != "auto":
        return setting == "on"
    parameter = next(model.parameters(), None)
    if parameter is None or parameter.dtype != torch.float32 or parameter.device.type != "cpu":
        return False
    return product_is_faster(model)


def product_is_faster(model: nn.Module, rows: int = 4, repeats: int = 7, margin: float = 0.05) -> bool:
    """
    Times the (W·xᵀ)ᵀ product against `F.linear` at `rows` rows on the eligible linear layers of `model` (one layer
    of each distinct weight shape), alternating the two, and says whether the product is at least `margin` faster
    (median of `repeats` rounds). A few milliseconds for a SmolLM2-sized model.
    """
    layers = {}
    for module in model.modules():
        if _eligible(module):
            layers.setdefault(tuple(module.weight.shape), module)
    if not layers:
        return False
    inputs = [(m, torch.randn(rows, m.in_features)) for m in layers.values()]
    stock, product = [], []
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first round warms both paths up
            for times, run in ((stock, lambda m, x: F.linear(x, m.weight, m.bias)), (product, _product)):
                start = time.perf_counter()
                for module, x in inputs:
                    run(module, x)
                times.append(time.perf_counter() - start)
    return statistics.median(product[1:]) < (1 - margin) * statistics.median(stock[1:])


def _product(module, x):
    y = torch.mm(module.weight, x.t()).t()
    return y if module.bias is None else y + module.bias


@contextlib.contextmanager
def small_batch_linears(model: nn.Module, max_rows: int = DEFAULT_MAX_ROWS):
    """`with small_batch_linears(target): target.generate(..., assistant_model=drafter)`; restores on exit."""
    already = is_enabled(model)
    if not already:
        enable(model, max_rows)
    try:
        yield model
    finally:
        if not already:
            disable(model)
