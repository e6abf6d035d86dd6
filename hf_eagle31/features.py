# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Target features for drafter training: what the frozen target contributes to every training step.

* `capture_target_features`: one target forward returning the drafter's captured hidden states
  (`hidden_states[i] for i in target_layer_ids`, the EAGLE/vLLM convention: index i = input of decoder layer i) and
  the target's final hidden state, from which teacher logits are computed *only for the draft vocabulary*
  (`draft_teacher_logits`): the full (B, T, V) logits are never formed. The one quantity that needs all V columns,
  the target's argmax (the loss is masked where it falls outside the draft vocabulary), is computed in chunks of
  positions (`chunked_argmax`).
* Offline mode: `precompute_features` stores exactly those tensors (captured states, final hidden state, argmax)
  in safetensors shards, plus the target's embeddings and output head, so training can run without the target in
  memory and gives the same loss as online training (`FeatureDataset`). Shards are written atomically and listed
  in `manifest.json` with their sha256: a killed run resumes where it stopped, and a damaged shard is reported on
  load with the command that repairs it.
"""

import hashlib
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from .assets import file_sha256
from .errors import InputError
from .utils import text_config
from .utils.io import output_lock, write_errors_name


if TYPE_CHECKING:  # annotations only
    import datasets


FORMAT = "hf-eagle31-features/1"
MANIFEST = "manifest.json"
HEAD_FILE = "target_head.safetensors"


def stored_layer_ids(target_layer_ids: list[int], num_hidden_layers: int) -> list[int]:
    """The hidden-state indices a training step needs: the drafter's taps plus the final one (teacher logits)."""
    return sorted({*map(int, target_layer_ids), int(num_hidden_layers)})


@torch.no_grad()
def capture_target_features(
    target: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, target_layer_ids: list[int]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """
    Runs the target's decoder (not its LM head) and returns `(features, final_hidden)`: `features` a list of the
    (B, T, H') states `hidden_states[i]` for `i in target_layer_ids`, `final_hidden` (B, T, H) the normalized last
    state that the LM head reads. Right padding only (positions are 0..T-1 in every row).
    """
    num_layers = text_config(target).num_hidden_layers
    wanted = stored_layer_ids(target_layer_ids, num_layers)
    out = target.base_model(
        input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=wanted, use_cache=False
    )
    hidden = out.hidden_states
    return [hidden[i] for i in target_layer_ids], hidden[num_layers]


def output_head(target: PreTrainedModel) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The target's LM head weight (V, H) and bias (or None)."""
    head = target.get_output_embeddings()
    if head is None:
        raise InputError(f"{type(target).__name__} has no output embeddings: pass a *ForCausalLM target.")
    return head.weight, getattr(head, "bias", None)


def draft_teacher_logits(
    final_hidden: torch.Tensor,
    head_weight: torch.Tensor,
    draft_ids: torch.Tensor,
    head_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Teacher logits restricted to the draft vocabulary: (B, T, H) x rows `draft_ids` of the head -> (B, T, D),
    fp32."""
    rows = head_weight[draft_ids].float()
    logits = final_hidden.float() @ rows.T
    if head_bias is not None:
        logits = logits + head_bias[draft_ids].float()
    return logits


@torch.no_grad()
def chunked_argmax(
    final_hidden: torch.Tensor, head_weight: torch.Tensor, head_bias: torch.Tensor | None = None, chunk_size: int = 1024
) -> torch.Tensor:
    """Argmax over the full vocabulary (B, T), computing at most `chunk_size` positions' V logits at a time."""
    flat = final_hidden.reshape(-1, final_hidden.shape[-1])
    out = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
    weight = head_weight.float()
    for start in range(0, flat.shape[0], chunk_size):
        logits = flat[start : start + chunk_size].float() @ weight.T  # (chunk, V)
        if head_bias is not None:
            logits = logits + head_bias.float()
        out[start : start + chunk_size] = logits.argmax(-1)
    return out.view(final_hidden.shape[:-1])


# ---------------------------------------------------------------------------------------------- offline shards


def dataset_fingerprint(dataset: "datasets.Dataset") -> str:
    """sha256 over every row's ids and mask: shards of one dataset are never mixed with another's."""
    digest = hashlib.sha256()
    for row in dataset:
        digest.update(torch.as_tensor(row["input_ids"], dtype=torch.int32).numpy().tobytes())
        digest.update(torch.as_tensor(row["loss_mask"], dtype=torch.int8).numpy().tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def _write_json_atomic(path: str, data: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


def _feature_settings(
    target: PreTrainedModel,
    dataset: "datasets.Dataset",
    target_layer_ids: list[int],
    shard_size: int,
    dtype: torch.dtype,
) -> dict:
    """What the features of a directory were made from: a resumed run must match it (all but `target_config`)."""
    text = text_config(target)
    return {
        "format": FORMAT,
        "target": getattr(text, "_name_or_path", None) or type(target).__name__,
        "target_config": target.config.to_dict(),
        "target_layer_ids": [int(i) for i in target_layer_ids],
        "stored_layer_ids": stored_layer_ids(target_layer_ids, text.num_hidden_layers),
        "final_layer_id": text.num_hidden_layers,
        "num_samples": len(dataset),
        "shard_size": shard_size,
        "dtype": str(dtype).replace("torch.", ""),
        "data_fingerprint": dataset_fingerprint(dataset),
    }


def _resumable_shards(out_dir: str, settings: dict) -> dict:
    """The shard entries of an earlier run into `out_dir` (none for a new directory); other settings are refused."""
    manifest_path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(manifest_path):
        return {}
    with open(manifest_path) as f:
        previous = json.load(f)
    changed = sorted(k for k in settings if k != "target_config" and previous.get(k) != settings[k])
    if changed:
        raise InputError(
            f"{out_dir} holds features made with different settings ({', '.join(changed)}): use another "
            "directory or delete this one."
        )
    return previous.get("shards", {})


def _write_target_head(target: PreTrainedModel, path: str) -> None:
    """The target's input embeddings and LM head (weight when not tied, bias when any), once per directory."""
    if os.path.exists(path):
        return
    weight, bias = output_head(target)
    embed = target.get_input_embeddings().weight
    tensors = {"embed_tokens": embed.detach().cpu().contiguous()}
    if weight.data_ptr() != embed.data_ptr():
        tensors["lm_head"] = weight.detach().cpu().contiguous()
    if bias is not None:
        tensors["lm_head_bias"] = bias.detach().cpu().contiguous()
    save_file(tensors, path + ".tmp")
    os.replace(path + ".tmp", path)


def _right_padded(rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) input ids and attention mask of `rows`, right-padded (positions 0..n-1 in every row)."""
    lengths = [len(r["input_ids"]) for r in rows]
    ids = torch.zeros(len(rows), max(lengths), dtype=torch.long)
    attention = torch.zeros_like(ids)
    for r, row in enumerate(rows):
        ids[r, : lengths[r]] = torch.as_tensor(row["input_ids"], dtype=torch.long)
        attention[r, : lengths[r]] = 1
    return ids, attention


def _shard_tensors(
    target: PreTrainedModel,
    dataset: "datasets.Dataset",
    start: int,
    stop: int,
    target_layer_ids: list[int],
    batch_size: int,
    dtype: torch.dtype,
    argmax_chunk_size: int,
) -> dict[str, torch.Tensor]:
    """The per-row tensors of rows `start..stop-1`, `batch_size` rows per target forward."""
    device = next(target.parameters()).device
    num_layers = text_config(target).num_hidden_layers
    layers = stored_layer_ids(target_layer_ids, num_layers)
    weight, bias = output_head(target)
    tensors = {}
    for b in range(start, stop, batch_size):
        rows = [dataset[i] for i in range(b, min(b + batch_size, stop))]
        ids, attention = _right_padded(rows)
        features, final = capture_target_features(target, ids.to(device), attention.to(device), target_layer_ids)
        hidden = {**dict(zip(map(int, target_layer_ids), features)), num_layers: final}  # stored layer -> (B, T, H)
        argmax = chunked_argmax(final, weight, bias, argmax_chunk_size)
        for r, row in enumerate(rows):
            i, n = b + r, len(row["input_ids"])
            tensors[f"{i}.input_ids"] = torch.as_tensor(row["input_ids"], dtype=torch.int32)
            tensors[f"{i}.loss_mask"] = torch.as_tensor(row["loss_mask"], dtype=torch.int8)
            tensors[f"{i}.teacher_argmax"] = argmax[r, :n].to(torch.int32).cpu()
            for layer in layers:
                tensors[f"{i}.hidden_{layer}"] = hidden[layer][r, :n].to(dtype).cpu().contiguous()
    return tensors


def _write_shard(path: str, tensors: dict[str, torch.Tensor], start: int, stop: int) -> dict:
    """Writes a shard atomically; returns its manifest entry (rows, size, sha256)."""
    save_file(tensors, path + ".tmp", metadata={"format": FORMAT})
    os.replace(path + ".tmp", path)
    return {"start": start, "stop": stop, "bytes": os.path.getsize(path), "sha256": file_sha256(path)}


@torch.no_grad()
def precompute_features(
    target: PreTrainedModel,
    dataset: "datasets.Dataset",
    target_layer_ids: list[int],
    out_dir: str,
    shard_size: int = 64,
    batch_size: int = 4,
    dtype: torch.dtype | None = None,
    argmax_chunk_size: int = 1024,
    show_progress: bool = True,
) -> dict:
    """
    Writes the features of every row of `dataset` (`input_ids`, `loss_mask`) to `out_dir`: shards of `shard_size`
    rows (`shard_00000.safetensors`, ...) with per-row tensors `{i}.input_ids`, `{i}.loss_mask`, `{i}.hidden_{l}`
    for every needed layer l, `{i}.teacher_argmax`; `target_head.safetensors` (embeddings, LM head); and
    `manifest.json`. `dtype` is the storage dtype of hidden states (default: the target's). Resumable: shards already
    listed in the manifest whose file has the recorded size are kept. Returns the manifest. One writer at a time
    (`utils.io.output_lock`); the manifest says `complete` only once every shard is written, so an interrupted run
    never looks whole. Write failures name the folder and what happened.
    """
    with output_lock(out_dir), write_errors_name(out_dir):
        return _precompute_features(
            target, dataset, target_layer_ids, out_dir, shard_size, batch_size, dtype, argmax_chunk_size, show_progress
        )


def _precompute_features(
    target, dataset, target_layer_ids, out_dir, shard_size, batch_size, dtype, argmax_chunk_size, show_progress
) -> dict:
    dtype = dtype or next(target.parameters()).dtype
    os.makedirs(out_dir, exist_ok=True)
    settings = _feature_settings(target, dataset, target_layer_ids, shard_size, dtype)
    shards = _resumable_shards(out_dir, settings)
    _write_target_head(target, os.path.join(out_dir, HEAD_FILE))
    manifest_path = os.path.join(out_dir, MANIFEST)
    num_shards = (len(dataset) + shard_size - 1) // shard_size
    for k in tqdm(range(num_shards), desc="features", disable=not show_progress):
        name = f"shard_{k:05d}.safetensors"
        path = os.path.join(out_dir, name)
        entry = shards.get(name)
        if entry is not None and os.path.exists(path) and os.path.getsize(path) == entry["bytes"]:
            continue  # done in an earlier run
        start, stop = k * shard_size, min((k + 1) * shard_size, len(dataset))
        tensors = _shard_tensors(target, dataset, start, stop, target_layer_ids, batch_size, dtype, argmax_chunk_size)
        shards[name] = _write_shard(path, tensors, start, stop)
        _write_json_atomic(manifest_path, {**settings, "shards": shards, "complete": False})
    manifest = {**settings, "shards": shards, "complete": len(shards) == num_shards}
    _write_json_atomic(manifest_path, manifest)
    return manifest


class FeatureDataset(torch.utils.data.Dataset):
    """
    Reads the shards of `precompute_features`. Every shard is checked when the dataset opens (`verify="sha256"`:
    content hash; `"size"`: file size and safetensors header only, for very large sets): a missing or damaged shard
    raises a ValueError naming it and the command that regenerates it. Items hold `input_ids`, `loss_mask`,
    `target_hidden_states` (n, k*H' in `target_layer_ids` order), `target_final_hidden` (n, H), `teacher_argmax` (n,).
    """

    def __init__(self, feature_dir: str, target_layer_ids: list[int] | None = None, verify: str = "sha256"):
        manifest_path = os.path.join(feature_dir, MANIFEST)
        if not os.path.exists(manifest_path):
            raise InputError(
                f"{feature_dir} has no {MANIFEST}: create the features with `precompute_features` "
                "(or `hf-eagle31 train --offline-features DIR`)."
            )
        with open(manifest_path) as f:
            self.manifest = json.load(f)
        if self.manifest.get("format") != FORMAT:
            raise InputError(
                f"{feature_dir} is not an hf-eagle31 feature directory (format {self.manifest.get('format')!r})."
            )
        if not self.manifest.get("complete"):
            raise InputError(
                f"features in {feature_dir} are incomplete ({len(self.manifest['shards'])} shards written): rerun "
                "`precompute_features` with the same data to finish them (it resumes)."
            )
        self.feature_dir = feature_dir
        self.target_layer_ids = list(target_layer_ids or self.manifest["target_layer_ids"])
        missing = sorted(set(self.target_layer_ids) - set(self.manifest["stored_layer_ids"]))
        if missing:
            raise InputError(
                f"features in {feature_dir} store hidden states {self.manifest['stored_layer_ids']} but the drafter "
                f"reads {self.target_layer_ids}: precompute features for this drafter's target_layer_ids."
            )
        self.final_layer_id = self.manifest["final_layer_id"]
        self.shard_size = self.manifest["shard_size"]
        self.shard_names = sorted(self.manifest["shards"])
        for name in self.shard_names:
            self._check_shard(name, verify)
        head = os.path.join(feature_dir, HEAD_FILE)
        if not os.path.exists(head):
            raise InputError(f"{head} is missing: rerun `precompute_features` into {feature_dir} to rewrite it.")

    def _check_shard(self, name, verify):
        path = os.path.join(self.feature_dir, name)
        entry = self.manifest["shards"][name]
        fix = (
            f"delete it and rerun `precompute_features` (or `hf-eagle31 train --offline-features "
            f"{self.feature_dir}`) with the same data: only missing shards are recomputed"
        )
        if not os.path.exists(path):
            raise InputError(f"feature shard {path} is missing: {fix}.")
        if os.path.getsize(path) != entry["bytes"]:
            raise InputError(
                f"feature shard {path} is corrupted (size {os.path.getsize(path)} != {entry['bytes']}): {fix}."
            )
        if verify == "sha256" and file_sha256(path) != entry["sha256"]:
            raise InputError(f"feature shard {path} is corrupted (sha256 mismatch): {fix}.")
        try:
            with safe_open(path, framework="pt") as f:
                keys = set(f.keys())
        except Exception as error:  # safetensors raises its own error types on bad headers
            raise InputError(f"feature shard {path} is corrupted ({error}): {fix}.") from None
        if f"{entry['start']}.input_ids" not in keys:
            raise InputError(f"feature shard {path} does not hold row {entry['start']}: {fix}.")

    def __len__(self) -> int:
        return self.manifest["num_samples"]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        path = os.path.join(self.feature_dir, f"shard_{i // self.shard_size:05d}.safetensors")
        with safe_open(path, framework="pt") as f:
            hidden = {
                layer: f.get_tensor(f"{i}.hidden_{layer}") for layer in {*self.target_layer_ids, self.final_layer_id}
            }
            return {
                "input_ids": f.get_tensor(f"{i}.input_ids").long(),
                "loss_mask": f.get_tensor(f"{i}.loss_mask").long(),
                "teacher_argmax": f.get_tensor(f"{i}.teacher_argmax").long(),
                "target_hidden_states": torch.cat([hidden[i] for i in self.target_layer_ids], dim=-1),
                "target_final_hidden": hidden[self.final_layer_id],
            }

    def rows(self) -> Iterator[dict[str, torch.Tensor]]:
        """Iterates `{"input_ids", "loss_mask"}` only (for the draft vocabulary), without reading hidden states."""
        for i in range(len(self)):
            path = os.path.join(self.feature_dir, f"shard_{i // self.shard_size:05d}.safetensors")
            with safe_open(path, framework="pt") as f:
                yield {"input_ids": f.get_tensor(f"{i}.input_ids"), "loss_mask": f.get_tensor(f"{i}.loss_mask")}

    def load_head(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(embed_tokens (V, H), lm_head weight (V, H), lm_head bias or None) of the target the features came from."""
        with safe_open(os.path.join(self.feature_dir, HEAD_FILE), framework="pt") as f:
            keys = set(f.keys())
            embed = f.get_tensor("embed_tokens")
            head = f.get_tensor("lm_head") if "lm_head" in keys else embed
            bias = f.get_tensor("lm_head_bias") if "lm_head_bias" in keys else None
        return embed, head, bias

    def target_config(self) -> PretrainedConfig:
        """The target's config as saved with the features (a transformers config object)."""
        data = dict(self.manifest["target_config"])
        return AutoConfig.for_model(data.pop("model_type"), **data)


__all__ = [
    "capture_target_features",
    "output_head",
    "draft_teacher_logits",
    "chunked_argmax",
    "precompute_features",
    "FeatureDataset",
    "dataset_fingerprint",
    "stored_layer_ids",
]
