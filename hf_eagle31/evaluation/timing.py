# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Timing `generate`: forward hooks that time the target's (or the drafter's) forwards, one timed `generate` call,
and the switch that lets `generate` compile the target's forward with a static cache."""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import CompileConfig, PreTrainedModel

from ..errors import InputError
from ..modeling import SpeculationStats, tau_from_forwards  # the one definition of tau and acceptance
from ..utils import device_sync


class ForwardHookTimer:
    """
    Times every forward of `module` with forward pre/post hooks (synchronising CUDA around each call). Subclasses
    record what they need in `_started(args, kwargs)` (before the call) and `_finished(seconds)` (after it). Use as a
    context manager: the hooks live inside the `with` block.
    """

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.device = next(module.parameters()).device
        self.handles = []
        self._start = None

    def _started(self, args, kwargs) -> None:
        pass

    def _finished(self, seconds: float) -> None:
        pass

    def _pre(self, module, args, kwargs):
        self._started(args, kwargs)
        device_sync(self.device)
        self._start = time.perf_counter()

    def _post(self, module, args, output):
        device_sync(self.device)
        self._finished(time.perf_counter() - self._start)

    def __enter__(self):
        # Kept out of torch.compile: generate compiles the target's whole call, hooks included, and tracing them would
        # recompile at every call (their bookkeeping changes) and put the timer inside the graph it times.
        self.handles = [
            self.module.register_forward_pre_hook(torch.compiler.disable(self._pre), with_kwargs=True),
            self.module.register_forward_hook(torch.compiler.disable(self._post)),
        ]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles = []


class TargetForwardTimer(ForwardHookTimer):
    """
    Times every forward of the target and records each call's query length, which tells how many candidates the
    call verified (`candidates_per_forward`), and its duration (`times_s`). Use as a context manager.
    """

    def __init__(self, model: PreTrainedModel):
        super().__init__(model)
        self.reset()

    def reset(self) -> None:
        self.time_s = 0.0
        self.query_lengths = []
        self.times_s = []
        self._start = None

    def _started(self, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"]
        self.query_lengths.append(ids.shape[1])

    def _finished(self, seconds):
        self.time_s += seconds
        self.times_s.append(seconds)

    @property
    def forwards(self) -> int:
        return len(self.query_lengths)

    def candidates_per_forward(self, prompt_length: int) -> list[int]:
        """Candidates verified by each recorded forward of one `generate` call: the first forward also carries the
        prompt, every later one the single not-yet-cached token before its candidates."""
        return [q - (prompt_length if i == 0 else 1) for i, q in enumerate(self.query_lengths)]


@dataclass
class GenerationRun:
    """One timed `generate` call."""

    new_tokens: list[int]
    wall_s: float
    target_forwards: int
    target_time_s: float
    drafter_time_s: float = 0.0
    tau: float | None = None
    stats: SpeculationStats | None = None  # of a drafter run
    candidates_per_forward: list[int] = field(default_factory=list)
    query_lengths: list[int] = field(default_factory=list)  # tokens fed to each target forward (the first: the prompt)
    forward_times_s: list[float] = field(default_factory=list)  # duration of each target forward


@torch.no_grad()
def timed_generate(
    target: PreTrainedModel,
    input_ids: Sequence[int] | torch.Tensor,
    timer: TargetForwardTimer,
    drafter: PreTrainedModel | None = None,
    prompt_lookup_tokens: int | None = None,
    max_new_tokens: int = 128,
    num_assistant_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float | None = None,
    seed: int | None = None,
    drafting: dict | None = None,
    static_cache: bool = False,
) -> GenerationRun:
    """
    One `generate` call, plain (no drafter, no prompt lookup), with HF prompt lookup (`prompt_lookup_tokens`), or
    with `drafter` as the assistant. `timer` is an active `TargetForwardTimer` on `target`. `drafting`: more
    `generate` options for the drafter (a drafting policy, see `DRAFTING_POLICIES`). `static_cache`: decode with a
    `StaticCache` (with room for HF prompt lookup, whose candidates are not cut at `max_length`).
    """
    ids = torch.as_tensor(input_ids, device=target.device).reshape(1, -1)
    kwargs = {"attention_mask": torch.ones_like(ids), "max_new_tokens": max_new_tokens, "do_sample": do_sample}
    if do_sample:
        kwargs.update(temperature=temperature if temperature is not None else 1.0, top_k=None, top_p=None)
    else:
        kwargs.update(temperature=None, top_k=None, top_p=None)
    config = target.generation_config
    if config.pad_token_id is None:
        eos = config.eos_token_id
        kwargs["pad_token_id"] = (eos[0] if isinstance(eos, (list, tuple)) else eos) if eos is not None else 0
    if drafter is not None:
        kwargs["assistant_model"] = drafter
        if num_assistant_tokens is not None:
            kwargs["num_assistant_tokens"] = num_assistant_tokens
        kwargs.update(drafting or {})
    elif prompt_lookup_tokens:
        kwargs["prompt_lookup_num_tokens"] = prompt_lookup_tokens
    if static_cache:
        from transformers import StaticCache

        room = ids.shape[1] + max_new_tokens + (prompt_lookup_tokens or 0) + 1
        kwargs["cache"] = StaticCache(config=target.config, max_cache_len=room)
    if seed is not None:
        torch.manual_seed(seed)
    timer.reset()
    device_sync(target.device)
    start = time.perf_counter()
    out = target.generate(ids, **kwargs)
    device_sync(target.device)
    wall = time.perf_counter() - start
    new = out[0, ids.shape[1] :].tolist()
    candidates = timer.candidates_per_forward(ids.shape[1])
    run = GenerationRun(
        new_tokens=new,
        wall_s=wall,
        target_forwards=timer.forwards,
        target_time_s=timer.time_s,
        candidates_per_forward=candidates,
        query_lengths=list(timer.query_lengths),
        forward_times_s=list(timer.times_s),
    )
    if drafter is not None:
        run.stats = drafter.last_speculation_stats
        run.drafter_time_s = run.stats.drafter_time_s
        run.tau = run.stats.tau
    elif prompt_lookup_tokens:
        run.tau = tau_from_forwards(candidates, len(new))
    return run


def static_cache_rollback_supported() -> bool:
    """Whether this transformers can roll a static cache back after rejected draft tokens (5.24 added
    `StaticLayer.crop`, and with it a compiled target forward in assisted decoding)."""
    from transformers.cache_utils import StaticLayer

    return "crop" in vars(StaticLayer)


def compile_target_generation(target) -> None:
    """Let `target.generate` compile the target's forward whenever it decodes with a static cache (transformers does
    so itself when the cache is static and `compile_config` allows the device; on a CPU that takes
    `_compile_all_devices`, and CUDA-graph mode is CUDA-only). Pass the static cache per call:
    `cache_implementation="static"`, or a `StaticCache` (what `bench --compile-target` does)."""
    if not static_cache_rollback_supported():
        raise InputError(
            "--compile-target needs transformers >= 5.24 (static-cache rollback in assisted decoding): "
            "pip install -U 'transformers>=5.24', or drop the flag."
        )
    config = CompileConfig(dynamic=True, mode="reduce-overhead" if target.device.type == "cuda" else "default")
    config._compile_all_devices = True
    target.generation_config.compile_config = config
