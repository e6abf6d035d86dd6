# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Small helpers every room uses (one copy each). Imports nothing else of the package."""

import torch


def text_config(config_or_model):
    """The text (decoder) config of a config or a model: `get_text_config()` where it exists (multimodal configs
    nest it), else the config itself."""
    config = getattr(config_or_model, "config", config_or_model)
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def device_sync(device) -> None:
    """Waits for the device's queued work (CUDA); a no-op on the CPU. Timers call it around what they time."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def format_number(value, spec: str = ".2f", missing: str = "—") -> str:
    """A report cell: `value` formatted with `spec`, or `missing` when there is no value."""
    return missing if value is None else format(value, spec)


def format_spread(value, spread, spec: str = ".2f") -> str:
    """A `median_range` result as `median (min–max)`, or the bare value when there is no spread (one pass)."""
    if value is None or not spread or spread[0] == spread[1]:
        return format_number(value, spec)
    return f"{format(value, spec)} ({format(spread[0], spec)}–{format(spread[1], spec)})"


__all__ = ["text_config", "device_sync", "format_number", "format_spread"]
