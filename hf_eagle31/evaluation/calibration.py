# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Speed numbers a busy machine cannot fool: a fixed calibration workload timed around a measurement.

`bench` and `eval` time the same small workload (a fixed forward of the target) before the measurement and after
every pass over the prompts. On a quiet machine its time stays put; when something else starts competing for the
CPU (or GPU) in the middle of the run, the later samples are slower. The measurement is flagged as unreliable when

    drift = max(sample) / min(sample) - 1 > drift_threshold        (samples: median time of the workload)

or when the 1-minute load average at the start already exceeded the number of usable CPUs. With `strict=True`
(`--strict` on the command line) a flagged run raises `MachineBusyError` (one line naming the fix) instead.

Each sample runs the workload `repeats` times and keeps the median; one timing spans at least `min_time_s` (the
workload is repeated `inner` times, fixed after the first sample) so that it covers several scheduler time slices
and a competing process cannot hide between them.

The module also holds `median_range`, the summary used for repeated measurements (median and min/max), and
`format_spread` / `format_number`, how reports print it.
"""

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import EXIT_BUSY, InputError, MachineBusyError  # noqa: F401  (EXIT_BUSY: also importable from here)
from ..utils import device_sync, format_number, format_spread, text_config  # noqa: F401  (format_*: also importable from here)


DRIFT_THRESHOLD = 0.15
BUSY_HINT = "machine busy, numbers unreliable"


@dataclass
class CalibrationSample:
    """One timing of the calibration workload: `seconds` is the median of `timings_s` (one workload run each)."""

    label: str
    seconds: float
    timings_s: list
    load_average: tuple

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "ms": 1e3 * self.seconds,
            "timings_ms": [1e3 * t for t in self.timings_s],
            "load_average": list(self.load_average),
        }


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else `os.cpu_count()`)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> tuple:
    """The 1, 5 and 15-minute load averages, or `(nan, nan, nan)` where the OS reports none."""
    try:
        return tuple(os.getloadavg())
    except (AttributeError, OSError):
        return (float("nan"),) * 3


def relative_drift(seconds: Sequence[float]) -> float:
    """`max / min - 1` of the samples' times: 0.0 for a steady machine, 0.5 when the slowest sample took 1.5× the
    fastest. Fewer than two samples give 0.0."""
    if len(seconds) < 2:
        return 0.0
    return max(seconds) / min(seconds) - 1.0


def median_range(values: Sequence[float | None]) -> tuple:
    """`(median, [min, max])` of repeated measurements, or `(None, None)` when any of them is missing."""
    if not values or any(v is None for v in values):
        return None, None
    return statistics.median(values), [min(values), max(values)]


def matmul_workload(size: int = 256, device: str | torch.device = "cpu") -> Callable[[], None]:
    """A fixed float32 matmul (`size`×`size`), the model-free calibration workload."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)

    def run():
        torch.mm(a, b)

    run.description = f"matmul {size}x{size} float32"
    return run


def forward_workload(model, num_tokens: int = 32) -> Callable[[], None]:
    """A fixed forward of `model` over `num_tokens` tokens (no cache, last-position logits): the calibration
    workload of `bench` and `eval`, which exercises the same kernels as the measurement."""
    vocab = text_config(model).vocab_size
    ids = (torch.arange(num_tokens, device=model.device) * 7 % vocab)[None]

    @torch.no_grad()
    def run():
        model(input_ids=ids, use_cache=False, logits_to_keep=1)

    dtype = str(model.dtype).removeprefix("torch.")
    run.description = f"target forward of {num_tokens} tokens, {dtype} on {model.device.type}"
    return run


class Calibration:
    """
    Times `workload` at labelled points of a measurement (`sample("before")`, `sample("after pass 1")`, ...) and
    tells whether the machine stayed steady.

    workload: a callable without arguments (default: `matmul_workload()`); a `description` attribute names it in
        the report.
    repeats: timings per sample (the sample is their median).
    min_time_s: the shortest span of one timing; the workload is repeated to reach it (count fixed at the first
        sample, so every sample times the same work).
    drift_threshold: largest allowed `relative_drift` of the samples (0.15 = 15%).
    device: synchronized around each timing when it is a CUDA device.
    """

    def __init__(
        self,
        workload: Callable[[], None] | None = None,
        repeats: int = 5,
        min_time_s: float = 0.03,
        drift_threshold: float = DRIFT_THRESHOLD,
        device: str | torch.device | None = None,
    ):
        if repeats < 1:
            raise InputError(f"calibration repeats must be >= 1, got {repeats}.")
        if drift_threshold <= 0:
            raise InputError(f"the drift threshold must be > 0, got {drift_threshold}: pass e.g. --max-drift 0.15.")
        self.workload = workload or matmul_workload()
        self.description = getattr(self.workload, "description", getattr(self.workload, "__name__", "workload"))
        self.repeats = repeats
        self.min_time_s = min_time_s
        self.drift_threshold = drift_threshold
        self.device = device
        self.inner = None  # workload calls per timing, fixed by the first sample
        self.samples: list[CalibrationSample] = []
        self.cpus = usable_cpus()
        self.load_at_start = load_average()

    # ------------------------------------------------------------------ timing

    def _time(self, inner: int) -> float:
        """Seconds per workload call, averaged over `inner` back-to-back calls."""
        if self.device is not None:
            device_sync(self.device)
        start = time.perf_counter()
        for _ in range(inner):
            self.workload()
        if self.device is not None:
            device_sync(self.device)
        return (time.perf_counter() - start) / inner

    def sample(self, label: str) -> CalibrationSample:
        """Times the workload now (warm-up call first) and records the sample under `label`."""
        if self.inner is None:
            once = max(self._time(1), self._time(1))  # also the warm-up
            self.inner = max(1, int(self.min_time_s / max(once, 1e-9)) + 1)
        else:
            self._time(1)
        return self.record(label, [self._time(self.inner) for _ in range(self.repeats)])

    def record(self, label: str, timings_s: Sequence[float], load: tuple | None = None) -> CalibrationSample:
        """Adds a sample from given timings (what `sample` measures; tests pass synthetic ones)."""
        sample = CalibrationSample(
            label=label,
            seconds=statistics.median(timings_s),
            timings_s=list(timings_s),
            load_average=tuple(load) if load is not None else load_average(),
        )
        self.samples.append(sample)
        return sample

    # ------------------------------------------------------------------ verdict

    @property
    def drift(self) -> float:
        return relative_drift([s.seconds for s in self.samples])

    def busy_at_start(self) -> bool:
        """Whether the 1-minute load average at construction exceeded the usable CPUs."""
        return self.load_at_start[0] > self.cpus  # nan compares False: no load average, no verdict

    def problems(self) -> list[str]:
        """Why the measurement is unreliable (empty when it is not)."""
        found = []
        if self.drift > self.drift_threshold:
            slow = max(self.samples, key=lambda s: s.seconds)
            fast = min(self.samples, key=lambda s: s.seconds)
            found.append(
                f"calibration drifted {100 * self.drift:.0f}% ({1e3 * fast.seconds:.2f} ms {fast.label} vs "
                f"{1e3 * slow.seconds:.2f} ms {slow.label}; threshold {100 * self.drift_threshold:.0f}%)"
            )
        if self.busy_at_start():
            found.append(f"load average {self.load_at_start[0]:.2f} > {self.cpus} usable CPUs at the start")
        return found

    @property
    def reliable(self) -> bool:
        return not self.problems()

    def warning(self) -> str | None:
        """One line for the report, or None when the machine stayed steady."""
        problems = self.problems()
        return f"{'; '.join(problems)} — {BUSY_HINT}" if problems else None

    def check(self, strict: bool = False):
        """With `strict`, raises `MachineBusyError` (one line) when the measurement is unreliable."""
        if strict and not self.reliable:
            raise MachineBusyError(
                f"measurement refused (--strict): {self.warning()}; rerun on a quiet machine, or drop --strict to "
                "keep the flagged numbers."
            )

    def check_load_at_start(self, strict: bool = False):
        """With `strict`, refuses before any measurement when the machine is already busy."""
        if strict and self.busy_at_start():
            raise MachineBusyError(
                f"measurement refused (--strict): load average {self.load_at_start[0]:.2f} > {self.cpus} usable CPUs "
                f"at the start — {BUSY_HINT}; rerun on a quiet machine, or drop --strict to keep the flagged numbers."
            )

    def summary(self) -> dict:
        """The JSON record: workload, machine, samples, drift and the verdict."""
        return {
            "workload": self.description,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "usable_cpus": self.cpus,
            "load_average_at_start": list(self.load_at_start),
            "samples": [s.to_dict() for s in self.samples],
            "drift": self.drift,
            "drift_threshold": self.drift_threshold,
            "reliable": self.reliable,
            "warning": self.warning(),
        }


def format_calibration(summary: dict) -> str:
    """Report lines for a `Calibration.summary()`: the samples and load, then a WARNING line when flagged."""
    ms = [s["ms"] for s in summary["samples"]]
    load = summary["load_average_at_start"][0]
    line = (
        f"calibration ({summary['workload']}): {' → '.join(f'{m:.2f}' for m in ms)} ms, drift "
        f"{100 * summary['drift']:.1f}% (threshold {100 * summary['drift_threshold']:.0f}%); load average "
        f"{load:.2f} on {summary['usable_cpus']} usable CPUs, {summary['threads']} torch threads"
    )
    if summary["warning"]:
        line += f"\nWARNING: {summary['warning']}"
    return line
