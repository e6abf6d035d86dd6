# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
What the speculation loop itself costs per cycle, apart from the model forwards.

On a GPU an 8B target's forward takes a few milliseconds, so host-side bookkeeping and host/device synchronisations per
cycle decide whether speculation pays there. `measure_loop_cost` runs `generate(assistant_model=drafter)` with forward
hooks on the target and the drafter and reports, per speculation cycle:

    host_ms      wall time minus the time inside target and drafter forwards (Python bookkeeping, mask and index
                 building, acceptance, cache surgery);
    host_cpu_ms  the same in this thread's CPU time (`time.thread_time`): on a machine shared with other work the
                 wall-time figure absorbs their load, the CPU-time one does not (with OMP_NUM_THREADS=1 the
                 forwards also run in this thread, so their CPU time is subtracted alike);
    syncs        host/device synchronisation points outside the forwards: `.item()`, `.tolist()`, `.cpu()`,
                 `.numpy()`, `bool()` / `int()` / `float()` of a tensor, `torch.equal`, `.nonzero()` — each one
                 a stall on a GPU (counted by wrapping those entry points during the run; on a CPU they cost nothing
                 but are counted all the same);
    forward_syncs the same points inside the forwards (the models' own, e.g. mask construction), for reference.

Run it with a target whose forward is nearly free (`benchmarks/loop_cost.py` builds a 1-layer, 16-wide one) to see the
loop alone; `hf-eagle31 bench --profile` also prints it for the real target.
"""

import time
from dataclasses import dataclass, field

import torch


# Tensor methods and torch functions that wait for the device (the result is read on the host).
_SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__", "nonzero")
_SYNC_FUNCTIONS = ("equal",)


@dataclass
class LoopCost:
    cycles: int = 0
    calls: int = 0
    wall_s: float = 0.0
    target_s: float = 0.0
    drafter_s: float = 0.0
    cpu_s: float = 0.0  # thread CPU time: the call, and inside the forwards
    forward_cpu_s: float = 0.0
    syncs: int = 0
    forward_syncs: int = 0
    sync_sites: dict = field(default_factory=dict)  # method name -> count (outside forwards)

    @property
    def host_ms_per_cycle(self) -> float | None:
        return 1e3 * (self.wall_s - self.target_s - self.drafter_s) / self.cycles if self.cycles else None

    @property
    def host_cpu_ms_per_cycle(self) -> float | None:
        return 1e3 * (self.cpu_s - self.forward_cpu_s) / self.cycles if self.cycles else None

    @property
    def syncs_per_cycle(self) -> float | None:
        return self.syncs / self.cycles if self.cycles else None

    def to_dict(self) -> dict:
        return {
            "cycles": self.cycles,
            "calls": self.calls,
            "wall_s": self.wall_s,
            "target_forward_s": self.target_s,
            "drafter_forward_s": self.drafter_s,
            "host_ms_per_cycle": self.host_ms_per_cycle,
            "host_cpu_ms_per_cycle": self.host_cpu_ms_per_cycle,
            "syncs_per_cycle": self.syncs_per_cycle,
            "forward_syncs_per_cycle": self.forward_syncs / self.cycles if self.cycles else None,
            "sync_sites": dict(sorted(self.sync_sites.items())),
        }


class SyncProbe:
    """Forward hooks that time the target's and the drafter's forwards, and wrappers that count sync points."""

    def __init__(self, target, drafter, cost: LoopCost):
        self.models = {"target": target, "drafter": drafter}
        self.cost, self.depth, self.started, self.handles, self.saved = cost, 0, {}, [], []

    def _pre(self, name):
        def hook(module, args, kwargs=None):
            if self.depth == 0:
                self.started[name] = (time.perf_counter(), time.thread_time())
            self.depth += 1

        return hook

    def _post(self, name):
        def hook(module, args, *rest):
            self.depth -= 1
            if self.depth == 0:
                wall, cpu = self.started.pop(name)
                spent = time.perf_counter() - wall
                self.cost.forward_cpu_s += time.thread_time() - cpu
                if name == "target":
                    self.cost.target_s += spent
                else:
                    self.cost.drafter_s += spent

        return hook

    def _counting(self, name, original):
        probe = self

        def wrapper(*args, **kwargs):
            if probe.depth:
                probe.cost.forward_syncs += 1
            else:
                probe.cost.syncs += 1
                probe.cost.sync_sites[name] = probe.cost.sync_sites.get(name, 0) + 1
            return original(*args, **kwargs)

        return wrapper

    def __enter__(self):
        for name, model in self.models.items():
            self.handles.append(model.register_forward_pre_hook(self._pre(name)))
            self.handles.append(model.register_forward_hook(self._post(name)))
        for method in _SYNC_METHODS:
            original = getattr(torch.Tensor, method)
            self.saved.append((torch.Tensor, method, original))
            setattr(torch.Tensor, method, self._counting(method, original))
        for function in _SYNC_FUNCTIONS:
            original = getattr(torch, function)
            self.saved.append((torch, function, original))
            setattr(torch, function, self._counting(function, original))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)
        return False


def measure_loop_cost(target, drafter, prompts, max_new_tokens: int = 64, warmup: int = 1, **generate_kwargs) -> dict:
    """
    Runs `target.generate(ids, assistant_model=drafter, max_new_tokens=..., **generate_kwargs)` for each prompt
    (token-id lists; the first `warmup` calls untimed) and returns `LoopCost.to_dict()` over the timed calls, with
    the policy that ran (`drafter.last_speculation_stats.policy`).
    """
    device = target.device
    options = {"do_sample": False, "max_new_tokens": max_new_tokens, **generate_kwargs}
    for ids in prompts[:warmup]:
        target.generate(torch.tensor([ids], device=device), assistant_model=drafter, **options)
    cost, policy = LoopCost(), None
    for ids in prompts:
        tensor = torch.tensor([ids], device=device)
        with SyncProbe(target, drafter, cost):
            start, cpu = time.perf_counter(), time.thread_time()
            target.generate(tensor, assistant_model=drafter, **options)
            cost.wall_s += time.perf_counter() - start
            cost.cpu_s += time.thread_time() - cpu
        stats = drafter.last_speculation_stats
        cost.cycles += stats.cycles
        cost.calls += 1
        policy = getattr(stats, "policy", None)
    return {**cost.to_dict(), "policy": policy}
