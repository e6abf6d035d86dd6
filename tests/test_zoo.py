"""
The drafter zoo: tiny replicas of the config.json files of the most used public EAGLE-3 / EAGLE-3.1 drafters
(tests/fixtures/zoo/), each with its producer's weight names and files, loaded with `Eagle3Drafter.from_pretrained`
exactly as published (no convert step), drafting inside `target.generate` with output identical to plain greedy, and
round-tripping through every `hf-eagle31 convert --to` format bit for bit.

Replicas keep every key of the real file and its value, except the sizes, shrunk to a tiny target: hidden_size 32,
intermediate_size 64, 4 attention heads (key/value heads 2, or 4 where the real drafter is multi-head), head_dim 8,
vocab_size 64, draft_vocab_size 48, target_hidden_size 32; token ids (bos 1, eos 2, pad 0) fall inside the tiny
vocabulary; captured-layer ids point into an 8-layer target (SGLang's `eagle_config` ids: outputs of layers 1, 3, 5).
Rope settings, max_position_embeddings, rms_norm_eps, switches and metadata are the real values. Weights are random
(written here, in the producer's key names and file format).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_convert import assert_same_tensors, tensors
from transformers import Qwen3Config, Qwen3ForCausalLM

from hf_eagle31 import Eagle3Config, Eagle3Drafter
from hf_eagle31.convert import convert_checkpoint

from conftest import tiny_sizes, tiny_target


ZOO = Path(__file__).parent / "fixtures" / "zoo"
SPECFORGE = "sgl-project/SpecForge @ a6b6b0230009d15ec2a97a57384e6f53f0f96946"
PROMPT = torch.tensor([[3, 17, 42, 8, 25, 11, 40]])
IMPLIED = [2, 4, 5]  # EAGLE's (2, L//2, L-3) for the 8-layer tiny target
SGLANG_IDS = [2, 4, 6]  # eagle_config ids 1, 3, 5 are outputs of those layers: ours are one more


@dataclass
class Drafter:
    """One public drafter: where its config comes from, how its producer writes it, and what reading it must give."""

    source: str  # the published drafter, and the repository + file its replica was taken from
    layout: str  # "midlayer" (SafeAILab / SpecForge / SGLang) or "speculators"
    weights_file: str  # model.safetensors or pytorch_model.bin, as the producer writes it
    embeddings: bool  # whether the producer writes embed_tokens.weight
    family: str  # the tiny target: "llama" or "qwen3"
    options: dict  # what from_pretrained needs beyond the files (the target is always passed when needed)
    refusal: tuple  # (an option, what loading says without it), or None: it needs none
    layer_ids: list  # the captured layers it must read (indices into HF hidden_states)
    expect: dict = field(default_factory=dict)  # config fields it must read as the real file means them


ENTRIES = {
    "safeailab-llama3.1-8b": Drafter(
        f"yuhuili/EAGLE3-LLaMA3.1-Instruct-8B; config as mirrored in {SPECFORGE} configs/llama3-8B-eagle3.json "
        "(docs FORMATS.md); SafeAILab writes pytorch_model.bin without embeddings",
        "midlayer",
        "pytorch_model.bin",
        False,
        "llama",
        {"target": True},
        ("target", r"pass target_config="),
        IMPLIED,
        {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "max_position_embeddings": 2048},
    ),
    "specforge-qwen3-8b": Drafter(
        f"SpecForge Qwen3-8B EAGLE-3 drafters; {SPECFORGE} configs/qwen3-8b-eagle3.json",
        "midlayer",
        "model.safetensors",
        True,
        "qwen3",
        {"target": True},
        ("target", r"pass target_config="),
        IMPLIED,
        {"rope_parameters": {"rope_type": "default", "rope_theta": 1e6}, "rms_norm_eps": 1e-6},
    ),
    "specforge-qwen3-30b-a3b-eagle3.1": Drafter(
        f"SpecForge EAGLE-3.1 drafters; {SPECFORGE} configs/qwen3-30B-A3B-eagle3.1.json",
        "midlayer",
        "model.safetensors",
        True,
        "qwen3",
        {"target": True, "norm_output_semantics": "post-norm-feed"},
        ("norm_output_semantics", r"pass norm_output_semantics='post-norm-feed' .* or 'pre-norm-feed'"),
        IMPLIED,
        {"fc_norm": True, "norm_output": True, "max_position_embeddings": 2048},
    ),
    "specforge-qwen3-next-80b-a3b": Drafter(
        f"SpecForge Qwen3-Next-80B-A3B drafters; {SPECFORGE} configs/qwen3-next-80b-a3b-eagle3.json "
        "(with Qwen-MoE's `decoder_sparse_step`)",
        "midlayer",
        "model.safetensors",
        True,
        "qwen3",
        {"target": True},
        ("target", r"pass target_config="),
        IMPLIED,
        {"rope_parameters": {"rope_type": "default", "rope_theta": 1e7}, "max_position_embeddings": 262144},
    ),
    "sglang-gpt-oss-120b": Drafter(
        f"lmsys/EAGLE3-gpt-oss-120b-bf16 (SGLang `eagle_config`); {SPECFORGE} configs/gpt-oss-120B-eagle3.json",
        "midlayer",
        "model.safetensors",
        False,
        "llama",
        {"target_layer_ids": SGLANG_IDS},
        ("target_layer_ids", r"eagle_config\.eagle_aux_hidden_state_layer_ids=\[1, 3, 5\].*SGLang as outputs"),
        SGLANG_IDS,
        {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "max_position_embeddings": 4096},
    ),
    "sglang-kimi-k2": Drafter(
        "Kimi-K2 EAGLE-3 drafters (model_type kimi_k2, `eagle_config` with use_aux_hidden_state); "
        "sgl-project/SpecForge @ 03ebe2cd6412a605cee345415b6eb18ffccc21f7 configs/kimi-k2-eagle3.json",
        "midlayer",
        "model.safetensors",
        True,
        "llama",
        {"target_layer_ids": SGLANG_IDS},
        ("target_layer_ids", r"SGLang as outputs of layer i"),
        SGLANG_IDS,
        {"num_key_value_heads": 4, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}},
    ),
    "sglang-qwen3-235b-a22b": Drafter(
        f"lmsys/Qwen3-235B-A22B-EAGLE3; {SPECFORGE} configs/qwen3-235B-A22B-eagle3.json",
        "midlayer",
        "model.safetensors",
        True,
        "qwen3",
        {"target_layer_ids": SGLANG_IDS},
        ("target_layer_ids", r"SGLang as outputs of layer i"),
        SGLANG_IDS,
        {"rope_parameters": {"rope_type": "default", "rope_theta": 1e6}, "max_position_embeddings": 40960},
    ),
    "speculators-llama3.1-8b": Drafter(
        "RedHatAI/Llama-3.1-8B-Instruct-speculator.eagle3: the early speculators layout (0.1.0.dev14: the keys of "
        "NVIDIA/TensorRT-Model-Optimizer examples/speculative_decoding/scripts/convert_to_vllm_ckpt.py, which copies "
        "it), layer config of vllm-project/speculators research/eagle3/train/llama3_8_B.json, converted with "
        "--norm-before-residual (research/eagle3/convert.sh); no captured layers stored (the target's default)",
        "speculators",
        "model.safetensors",
        True,
        "llama",
        {"target": True},
        ("target", r"pass target_config="),
        IMPLIED,
        {
            "norm_before_residual": True,
            "rope_parameters": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_theta": 500000.0,
            },
            "target_name_or_path": "meta-llama/Llama-3.1-8B-Instruct",
        },
    ),  # fmt: skip
    "speculators-qwen3-8b": Drafter(
        "RedHatAI/Qwen3-8B-speculator.eagle3 as speculators 0.9.0 saves it (Eagle3SpeculatorConfig's fields, layer "
        "config by transformers 5's LlamaConfig.to_diff_dict), layer config of vllm-project/speculators "
        "research/eagle3/train/qwen3config.json",
        "speculators",
        "model.safetensors",
        True,
        "qwen3",
        {},
        None,
        [1, 4, 6],
        {
            "rope_parameters": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_theta": 500000.0,
            },
            "target_name_or_path": "Qwen/Qwen3-8B",
        },
    ),  # fmt: skip
}


def test_the_zoo_covers_every_replica_and_enough_layouts():
    assert sorted(p.stem for p in ZOO.glob("*.json")) == sorted(ENTRIES)
    assert len(ENTRIES) >= 8


def make_target(family):
    if family == "qwen3":
        torch.manual_seed(0)
        return Qwen3ForCausalLM(Qwen3Config(**tiny_sizes(head_dim=8))).eval()
    return tiny_target()


def published(name, entry, target, path):
    """The replica as its producer publishes it: its config.json as it is, random weights under the producer's key
    names in the producer's file. Returns the tensors under our names (what reading it must give)."""
    config = json.loads((ZOO / f"{name}.json").read_text())
    layer = config.get("transformer_layer_config", config)
    reference = Eagle3Config.from_target(
        target.config,
        variant="eagle3.1" if entry.expect.get("fc_norm") else "eagle3",
        draft_vocab_size=layer.get("draft_vocab_size") or config["draft_vocab_size"],
        intermediate_size=layer["intermediate_size"],
        num_attention_heads=layer["num_attention_heads"],
        num_key_value_heads=layer["num_key_value_heads"],
        head_dim=layer.get("head_dim") or layer["hidden_size"] // layer["num_attention_heads"],
        target_layer_ids=entry.layer_ids,
    )
    torch.manual_seed(1)
    drafter = Eagle3Drafter(reference)
    drafter.set_draft_vocab(torch.randperm(reference.vocab_size)[: reference.draft_vocab_size])
    drafter.load_target_embeddings(target)
    with torch.no_grad():
        for key, param in drafter.named_parameters():
            if "norm" in key:  # random norms: a swapped or dropped norm changes the drafts
                param.copy_(1 + 0.5 * torch.randn(param.shape))
    ours = {k: v.clone() for k, v in drafter.state_dict().items() if entry.embeddings or k != "embed_tokens.weight"}
    rename = "midlayer." if entry.layout == "midlayer" else "layers.0."
    written = {(rename + k[len("layers.0.") :] if k.startswith("layers.0.") else k): v for k, v in ours.items()}
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config, indent=2))
    if entry.weights_file == "pytorch_model.bin":
        torch.save(written, path / entry.weights_file)
    else:
        save_file(written, path / entry.weights_file)
    return ours


def load_options(entry, target, without=None):
    options = {k: v for k, v in entry.options.items() if k not in ("target", without)}
    if entry.options.get("target") and without != "target":
        options["target_config"] = target.config
    return options


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_public_drafter_loads_as_published_and_drafts_exactly(tmp_path, name):
    entry = ENTRIES[name]
    target = make_target(entry.family)
    src = tmp_path / name
    written = published(name, entry, target, src)
    if entry.refusal:  # what it needs beyond its files is asked for in one line, as convert asks
        missing, message = entry.refusal
        with pytest.raises(ValueError, match=message):
            Eagle3Drafter.from_pretrained(src, **load_options(entry, target, without=missing))
    drafter = Eagle3Drafter.from_pretrained(src, **load_options(entry, target))
    assert drafter.config.target_layer_ids == entry.layer_ids
    for key, value in entry.expect.items():
        assert getattr(drafter.config, key) == value, key
    loaded = drafter.state_dict()
    if not entry.embeddings:
        loaded.pop("embed_tokens.weight")
    assert_same_tensors(loaded, written)
    plain = target.generate(PROMPT, max_new_tokens=16, do_sample=False)
    assisted = target.generate(PROMPT, max_new_tokens=16, do_sample=False, assistant_model=drafter)
    assert torch.equal(assisted, plain)
    assert drafter.last_speculation_stats.drafter_forwards > 0
    tree = target.generate(PROMPT, max_new_tokens=16, do_sample=False, assistant_model=drafter, draft_tree=True)
    assert torch.equal(tree, plain)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_public_drafter_round_trips_through_every_format(tmp_path, name):
    """Saved in our layout, then through every `--to` format and back: the same tensors and config. Formats that
    cannot hold the drafter refuse in one line: the EAGLE layout stores no captured layers (only EAGLE's implied
    ones fit) and SpecForge would misread norm_before_residual."""
    entry = ENTRIES[name]
    target = make_target(entry.family)
    src = tmp_path / name
    published(name, entry, target, src)
    drafter = Eagle3Drafter.from_pretrained(src, **load_options(entry, target))
    drafter.save_pretrained(tmp_path / "ours")
    ours = tensors(tmp_path / "ours")
    eagle_holds_it = entry.layer_ids == IMPLIED and not drafter.config.norm_before_residual
    for fmt in ("hf-eagle31", "eagle", "vllm", "speculators"):
        out = tmp_path / f"to-{fmt}"
        convert = lambda: convert_checkpoint(  # noqa: E731
            tmp_path / "ours", out, fmt, target=target, eagle_consumer="specforge"
        )
        if fmt == "eagle" and not eagle_holds_it:
            with pytest.raises(ValueError, match="--to vllm"):
                convert()
            continue
        convert()
        back = Eagle3Drafter.from_pretrained(out, **({"target_config": target.config} if fmt == "eagle" else {}))
        for key in ("target_layer_ids", "rope_parameters", "fc_norm", "norm_output", "norm_before_residual"):
            assert getattr(back.config, key) == getattr(drafter.config, key), (fmt, key)
        convert_checkpoint(out, tmp_path / f"back-{fmt}", "hf-eagle31", target=target)
        again = tensors(tmp_path / f"back-{fmt}")
        assert_same_tensors(
            {k: v for k, v in again.items() if k in ours}, ours
        )  # (our layout may gain the target's embeddings)
        if fmt != "hf-eagle31":
            assert load_file(out / "model.safetensors")  # a real file of that format was written
