"""
Checkpoint conversion: synthetic checkpoints laid out exactly as SafeAILab EAGLE-3, SpecForge and
vllm-project/speculators publish them (configs and key names from their public checkpoints / speculators 0.9.0's
`save_pretrained`), converted in and out. Weights must survive bit-identically and converted drafters must draft
exactly like the original inside `generate`.
"""

import json
import re
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_eagle31 import Eagle3Drafter
from hf_eagle31.cli import main as cli_main
from hf_eagle31.convert import convert_checkpoint, detect_format, read_checkpoint
from hf_eagle31.modeling.candidate_generator import EagleCandidateGenerator

from conftest import make_drafter as _make_drafter
from conftest import tiny_target


PROMPT = torch.tensor([[3, 17, 42, 8, 25, 11]])


def make_drafter(target, variant, **kwargs):
    """A random drafter whose RMSNorm weights are random too (all-ones norms would hide swapped or dropped norms)."""
    drafter = _make_drafter(target, variant, **kwargs)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, param in drafter.named_parameters():
            if "norm" in name:
                param.copy_(1 + 0.5 * torch.randn(param.shape, generator=generator))
    return drafter


@pytest.fixture(scope="module")
def target():
    return tiny_target()


def drafting_trace(target, drafter, max_new_tokens=16):
    """Greedy output, each cycle's drafted tokens and accepted counts of `target.generate(assistant_model=...)`."""
    proposals = []
    original = EagleCandidateGenerator._draft

    def spy(self, input_ids, k, copy=None):
        draft = original(self, input_ids, k, copy)
        proposals.append(draft.tokens.tolist())
        return draft

    with mock.patch.object(EagleCandidateGenerator, "_draft", spy):
        out = target.generate(
            PROMPT, assistant_model=drafter, max_new_tokens=max_new_tokens, do_sample=False, num_assistant_tokens=4
        )
    return out.tolist(), proposals, list(drafter.last_speculation_stats.accepted)


def tensors(path):
    return load_file(path / "model.safetensors")


def assert_same_tensors(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


# --------------------------------------------------------------------------- foreign checkpoints, as published


def llama_eagle_config(drafter, **extra):
    """config.json of yuhuili/EAGLE3-LLaMA3.1-Instruct-8B (mirrored by SpecForge configs/llama3-8B-eagle3.json)."""
    cfg = drafter.config
    config = {
        "architectures": ["LlamaForCausalLMEagle3"],
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "hidden_act": "silu",
        "hidden_size": cfg.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": 2048,
        "model_type": "llama",
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "num_hidden_layers": 1,
        "pad_token_id": 0,
        "rms_norm_eps": cfg.rms_norm_eps,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.28.1",
        "use_cache": True,
        "vocab_size": cfg.vocab_size,
        "draft_vocab_size": cfg.draft_vocab_size,
    }
    config.update(extra)
    return config


def eagle_weights(drafter, embeddings):
    weights = {}
    for key, value in drafter.state_dict().items():
        if key == "embed_tokens.weight" and not embeddings:
            continue
        weights[key.replace("layers.0.", "midlayer.")] = value.clone()
    return weights


def write_safeailab(drafter, path):
    """SafeAILab EAGLE-3: pytorch_model.bin with midlayer.* keys, d2t/t2d, no embeddings (loaded from the base)."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps(llama_eagle_config(drafter), indent=2))
    torch.save(eagle_weights(drafter, embeddings=False), path / "pytorch_model.bin")
    return path


def write_specforge_31(drafter, path):
    """SpecForge EAGLE-3.1 export: model.safetensors with embeddings, fc_norm.* and top-level fc_norm/norm_output."""
    path.mkdir()
    config = llama_eagle_config(drafter, fc_norm=True, norm_output=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file(eagle_weights(drafter, embeddings=True), path / "model.safetensors")
    return path


def write_speculators(drafter, path, verifier="org/tiny-target"):
    """speculators 0.9.0 `Eagle3DraftModel.save_pretrained` output (config captured from the library itself)."""
    cfg = drafter.config
    path.mkdir()
    full_vocab = cfg.draft_vocab_size == cfg.vocab_size
    config = {
        "architectures": ["Eagle3DraftModel"],
        "auto_map": {"": "config.Eagle3SpeculatorConfig"},
        "draft_vocab_size": cfg.draft_vocab_size,
        "dtype": "float32",
        "eagle_aux_hidden_state_layer_ids": list(cfg.target_layer_ids),
        "embed_requires_grad": False,
        "fc_norm": cfg.fc_norm,
        "norm_before_fc": cfg.norm_before_fc,
        "norm_before_residual": cfg.norm_before_residual,
        "norm_output": cfg.norm_output,
        "speculators_config": {
            "algorithm": "eagle3",
            "default_proposal_method": "greedy",
            "proposal_methods": [
                {"accept_tolerance": 0.0, "proposal_type": "greedy", "speculative_tokens": 3, "verifier_accept_k": 1}
            ],
            "verifier": {"architectures": ["LlamaForCausalLM"], "name_or_path": verifier},
        },
        "speculators_model_type": "eagle3",
        "speculators_version": "0.9.0",
        "target_hidden_size": None,
        "tie_word_embeddings": False,
        "transformer_layer_config": {
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "head_dim": cfg.head_dim,
            "hidden_act": "silu",
            "hidden_size": cfg.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": cfg.intermediate_size,
            "max_position_embeddings": 2048,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": cfg.num_attention_heads,
            "num_hidden_layers": 1,
            "num_key_value_heads": cfg.num_key_value_heads,
            "pad_token_id": None,
            "pretraining_tp": 1,
            "rms_norm_eps": cfg.rms_norm_eps,
            "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
            "tie_word_embeddings": False,
            "transformers_version": "5.23.0",
            "use_cache": True,
            "vocab_size": cfg.vocab_size,
        },
        "transformers_version": "5.23.0",
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    weights = {k: v.clone() for k, v in drafter.state_dict().items()}
    if full_vocab:  # speculators registers d2t/t2d only for a reduced draft vocabulary
        del weights["d2t"], weights["t2d"]
    save_file(weights, path / "model.safetensors")
    return path


# --------------------------------------------------------------------------- import: foreign -> hf-eagle31


def test_detects_every_format(tmp_path, target):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    assert detect_format(write_safeailab(drafter, tmp_path / "eagle")) == "eagle"
    assert detect_format(write_specforge_31(drafter, tmp_path / "specforge")) == "eagle"
    assert detect_format(write_speculators(drafter, tmp_path / "spec")) == "speculators"
    drafter.save_pretrained(tmp_path / "ours")
    assert detect_format(tmp_path / "ours") == "hf-eagle31"
    convert_checkpoint(tmp_path / "ours", tmp_path / "vllm", "vllm")
    assert detect_format(tmp_path / "vllm") == "vllm"


def test_safeailab_eagle3_imports_and_drafts_like_the_original(tmp_path, target):
    drafter = make_drafter(target, "eagle3", draft_vocab_size=40)
    src = write_safeailab(drafter, tmp_path / "eagle")
    with pytest.raises(ValueError, match="--target"):  # layer count is implied by the target, which EAGLE omits
        convert_checkpoint(src, tmp_path / "nolayers", "hf-eagle31")
    ckpt = convert_checkpoint(src, tmp_path / "ours", "hf-eagle31", target=target)
    assert ckpt.config.target_layer_ids == [2, 4, 5] and ckpt.has_embeddings  # embeddings taken from the target
    converted = Eagle3Drafter.from_pretrained(tmp_path / "ours")
    assert converted.config.max_position_embeddings == 2048 and not converted.config.fc_norm
    assert drafting_trace(target, converted) == drafting_trace(target, drafter)


def test_specforge_eagle31_imports_with_switches_and_embeddings(tmp_path, target):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    src = write_specforge_31(drafter, tmp_path / "specforge")
    with pytest.raises(ValueError, match="--norm-output-semantics"):  # SpecForge's norm_output had two meanings
        convert_checkpoint(src, tmp_path / "ours", "hf-eagle31", target_layer_ids=[2, 4, 5])
    convert_checkpoint(
        src, tmp_path / "ours", "hf-eagle31", target_layer_ids=[2, 4, 5], norm_output_semantics="post-norm-feed"
    )
    converted = Eagle3Drafter.from_pretrained(tmp_path / "ours")
    assert converted.config.fc_norm and converted.config.norm_output and converted.embeddings_ready
    assert drafting_trace(target, converted) == drafting_trace(target, drafter)
    # and back out again: the SpecForge file comes back bit for bit
    convert_checkpoint(tmp_path / "ours", tmp_path / "again", "eagle", eagle_consumer="specforge")
    assert_same_tensors(tensors(tmp_path / "again"), load_file(src / "model.safetensors"))


@pytest.mark.parametrize("draft_vocab_size", [None, 48])
def test_speculators_imports_layer_ids_unchanged_and_round_trips(tmp_path, target, draft_vocab_size):
    # A non-default layout: speculators ids index HF hidden_states (input of layer i), the same as ours.
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=draft_vocab_size, target_layer_ids=[1, 3, 6])
    src = write_speculators(drafter, tmp_path / "spec")
    ckpt = convert_checkpoint(src, tmp_path / "ours", "hf-eagle31")
    assert ckpt.config.target_layer_ids == [1, 3, 6]
    converted = Eagle3Drafter.from_pretrained(tmp_path / "ours")
    assert converted.config.target_name_or_path == "org/tiny-target"
    assert drafting_trace(target, converted) == drafting_trace(target, drafter)
    convert_checkpoint(tmp_path / "ours", tmp_path / "again", "speculators")
    assert_same_tensors(tensors(tmp_path / "again"), load_file(src / "model.safetensors"))
    published = json.loads((src / "config.json").read_text())
    exported = json.loads((tmp_path / "again" / "config.json").read_text())
    for key in (
        "speculators_model_type",
        "draft_vocab_size",
        "eagle_aux_hidden_state_layer_ids",
        "fc_norm",
        "norm_output",
        "norm_before_fc",
        "norm_before_residual",
        "target_hidden_size",
        "embed_requires_grad",
    ):
        assert exported[key] == published[key], key
    assert exported["speculators_config"]["verifier"]["name_or_path"] == "org/tiny-target"
    layer = exported["transformer_layer_config"]
    assert {k: layer[k] for k in ("model_type", "hidden_size", "num_hidden_layers", "head_dim", "vocab_size")} == {
        k: published["transformer_layer_config"][k]
        for k in ("model_type", "hidden_size", "num_hidden_layers", "head_dim", "vocab_size")
    }


# --------------------------------------------------------------------------- export: hf-eagle31 -> foreign -> back


@pytest.mark.parametrize("fmt", ["eagle", "speculators", "vllm"])
def test_round_trip_is_bit_identical_and_drafts_identically(tmp_path, target, fmt):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48).to(torch.bfloat16)
    drafter.save_pretrained(tmp_path / "ours")
    convert_checkpoint(tmp_path / "ours", tmp_path / fmt, fmt, eagle_consumer="specforge")
    convert_checkpoint(tmp_path / fmt, tmp_path / "back", "hf-eagle31")  # eagle: its norm_output meaning is recorded
    assert_same_tensors(tensors(tmp_path / "back"), tensors(tmp_path / "ours"))
    before, after = read_checkpoint(tmp_path / "ours").config, read_checkpoint(tmp_path / "back").config
    for name in (
        "vocab_size",
        "draft_vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "rms_norm_eps",
        "rope_parameters",
        "target_hidden_size",
        "target_layer_ids",
        "target_num_hidden_layers",
        "num_hidden_layers",
        "fc_norm",
        "norm_output",
        "norm_before_fc",
        "norm_before_residual",
        "embeddings_in_checkpoint",
    ):
        assert getattr(after, name) == getattr(before, name), name
    converted = Eagle3Drafter.from_pretrained(tmp_path / "back").float()
    assert drafting_trace(target, converted) == drafting_trace(target, drafter.float())


def test_exports_use_each_formats_names(tmp_path, target):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48, norm_before_residual=True)
    drafter.save_pretrained(tmp_path / "ours")
    for fmt in ("vllm", "speculators"):
        convert_checkpoint(tmp_path / "ours", tmp_path / fmt, fmt)
    # SpecForge's and SafeAILab's midlayer class ignores norm_before_residual: an EAGLE export would be misread
    with pytest.raises(ValueError, match=r"norm_before_residual=True, which SpecForge's and SafeAILab's .*--to vllm"):
        convert_checkpoint(tmp_path / "ours", tmp_path / "refused", "eagle", eagle_consumer="specforge")
    drafter.config.norm_before_residual = False
    drafter.save_pretrained(tmp_path / "plain-residual")
    convert_checkpoint(tmp_path / "plain-residual", tmp_path / "eagle", "eagle", eagle_consumer="specforge")
    eagle_keys, vllm_keys = set(tensors(tmp_path / "eagle")), set(tensors(tmp_path / "vllm"))
    assert "midlayer.self_attn.q_proj.weight" in eagle_keys and not any(k.startswith("layers.") for k in eagle_keys)
    assert vllm_keys == set(tensors(tmp_path / "speculators")) == set(drafter.state_dict())
    vllm = json.loads((tmp_path / "vllm" / "config.json").read_text())
    # vLLM's Eagle3 loader reads these at the top level; aux ids in its "input of layer i" convention.
    assert vllm["architectures"] == ["LlamaForCausalLMEagle3"] and vllm["model_type"] == "llama"
    assert (vllm["fc_norm"], vllm["norm_output"], vllm["norm_before_fc"], vllm["norm_before_residual"]) == (
        True,
        True,
        False,
        True,
    )
    assert vllm["eagle_aux_hidden_state_layer_ids"] == [2, 4, 5] and "eagle_config" not in vllm
    eagle = json.loads((tmp_path / "eagle" / "config.json").read_text())
    assert eagle["fc_norm"] is True and eagle["norm_output"] is True and "eagle_aux_hidden_state_layer_ids" not in eagle
    assert eagle["norm_output_semantics"] == "post-norm-feed"  # which of SpecForge's two meanings was written


def test_unsorted_layers_are_exported_in_vllm_capture_order(tmp_path, target):
    """vLLM concatenates captured states in ascending layer order: fc's blocks must be permuted to match."""
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48, target_layer_ids=[5, 2, 4])
    drafter.save_pretrained(tmp_path / "ours")
    convert_checkpoint(tmp_path / "ours", tmp_path / "vllm", "vllm")
    assert json.loads((tmp_path / "vllm" / "config.json").read_text())["eagle_aux_hidden_state_layer_ids"] == [2, 4, 5]
    convert_checkpoint(tmp_path / "vllm", tmp_path / "back", "hf-eagle31")
    converted = Eagle3Drafter.from_pretrained(tmp_path / "back")
    assert converted.config.target_layer_ids == [2, 4, 5]
    assert drafting_trace(target, converted) == drafting_trace(target, drafter)


def test_eagle_export_refuses_layers_it_cannot_store(tmp_path, target):
    drafter = make_drafter(target, "eagle3", target_layer_ids=[1, 3, 6])
    drafter.save_pretrained(tmp_path / "ours")
    with pytest.raises(ValueError, match="--to vllm"):
        convert_checkpoint(tmp_path / "ours", tmp_path / "eagle", "eagle")


@pytest.mark.parametrize("fmt", ["speculators", "vllm"])
def test_deeper_drafters_round_trip_where_the_format_has_layers_n(tmp_path, target, fmt):
    """A depth-2 drafter exports as `layers.0.*` + `layers.1.*` with the depth in the Llama config, and comes back bit
    for bit, drafting identically."""
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48, num_hidden_layers=2)
    drafter.save_pretrained(tmp_path / "ours")
    convert_checkpoint(tmp_path / "ours", tmp_path / fmt, fmt, target=target)
    config = json.loads((tmp_path / fmt / "config.json").read_text())
    assert (config["transformer_layer_config"] if fmt == "speculators" else config)["num_hidden_layers"] == 2
    assert "layers.1.self_attn.q_proj.weight" in tensors(tmp_path / fmt)
    ckpt = convert_checkpoint(tmp_path / fmt, tmp_path / "back", "hf-eagle31")
    assert ckpt.config.num_hidden_layers == 2 and ckpt.config.target_num_hidden_layers == 8
    assert_same_tensors(tensors(tmp_path / "back"), tensors(tmp_path / "ours"))
    converted = Eagle3Drafter.from_pretrained(tmp_path / "back")
    assert len(converted.layers) == 2
    assert drafting_trace(target, converted) == drafting_trace(target, drafter)


def test_eagle_format_refuses_deeper_drafters(tmp_path, target, capsys):
    """The EAGLE format has one `midlayer`: a depth-2 drafter is refused on export (one line naming the format and the
    depth), and a `midlayer` checkpoint whose config claims two layers is refused on import."""
    drafter = make_drafter(target, "eagle3", num_hidden_layers=2)
    drafter.save_pretrained(tmp_path / "ours")
    with pytest.raises(ValueError, match=r"EAGLE format holds one decoder layer .*; this drafter has 2: .*--to vllm"):
        convert_checkpoint(tmp_path / "ours", tmp_path / "eagle", "eagle")
    capsys.readouterr()  # the progress bars of save_pretrained
    assert cli_main(["convert", str(tmp_path / "ours"), str(tmp_path / "eagle2"), "--to", "eagle"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(
        r"hf-eagle31 convert: error: .*EAGLE format holds one decoder layer.*this drafter has 2: .*", err
    )
    one_layer = make_drafter(target, "eagle3")
    src = tmp_path / "claims-two"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(llama_eagle_config(one_layer, num_hidden_layers=2)))
    torch.save(eagle_weights(one_layer, embeddings=False), src / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"EAGLE format holds one decoder layer .*; this drafter has 2"):
        read_checkpoint(src, target_config=target.config)


def test_ambiguous_eagle_config_layer_ids_are_not_guessed(tmp_path, target):
    drafter = make_drafter(target, "eagle3")
    src = tmp_path / "sglang"
    src.mkdir()
    config = llama_eagle_config(drafter, eagle_config={"eagle_aux_hidden_state_layer_ids": [1, 3, 4]})
    (src / "config.json").write_text(json.dumps(config))
    save_file(eagle_weights(drafter, embeddings=True), src / "model.safetensors")
    with pytest.raises(ValueError, match="SGLang"):
        read_checkpoint(src)
    # SGLang's ids are outputs of layer i: ours are one more.
    assert read_checkpoint(src, target_layer_ids=[2, 4, 5]).config.target_layer_ids == [2, 4, 5]


# --------------------------------------------------------------------------- embedding safety


def test_random_embeddings_are_refused_when_the_target_can_tell(tmp_path, target):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    with torch.no_grad():
        drafter.embed_tokens.weight.normal_(std=0.02)  # what an exporter that forgot load_target_embeddings writes
    src = write_specforge_31(drafter, tmp_path / "specforge")
    with pytest.raises(ValueError, match="random or from another model"):
        convert_checkpoint(src, tmp_path / "out", "vllm", target=target, norm_output_semantics="post-norm-feed")
    convert_checkpoint(
        src, tmp_path / "fixed", "vllm", target=target, embeddings="target", norm_output_semantics="post-norm-feed"
    )
    fixed = tensors(tmp_path / "fixed")["embed_tokens.weight"]
    assert torch.equal(fixed, target.get_input_embeddings().weight)


def test_absent_embeddings_are_never_made_up(tmp_path, target):
    drafter = make_drafter(target, "eagle3", draft_vocab_size=40)
    src = write_safeailab(drafter, tmp_path / "eagle")
    # No target: every destination but speculators-without-verifier records "take them from the target".
    ckpt = convert_checkpoint(src, tmp_path / "ours", "hf-eagle31", target_layer_ids=[2, 4, 5])
    assert not ckpt.has_embeddings and "embed_tokens.weight" not in tensors(tmp_path / "ours")
    converted = Eagle3Drafter.from_pretrained(tmp_path / "ours")
    assert not converted.config.embeddings_in_checkpoint and not converted.embeddings_ready
    assert drafting_trace(target, converted) == drafting_trace(target, drafter)  # generate loads the target's
    convert_checkpoint(tmp_path / "ours", tmp_path / "vllm", "vllm")
    assert "embed_tokens.weight" not in tensors(tmp_path / "vllm")
    with pytest.raises(ValueError, match="zero embeddings.*--target.*--allow-missing-embeddings"):
        convert_checkpoint(tmp_path / "ours", tmp_path / "spec", "speculators")


def test_checkpoint_that_lost_its_declared_embeddings_needs_the_target(tmp_path, target):
    drafter = make_drafter(target, "eagle3.1")
    drafter.save_pretrained(tmp_path / "ours")
    weights = tensors(tmp_path / "ours")
    del weights["embed_tokens.weight"]
    save_file(weights, tmp_path / "ours" / "model.safetensors")
    with pytest.raises(ValueError, match="embeddings_in_checkpoint=True"):
        convert_checkpoint(tmp_path / "ours", tmp_path / "out", "vllm")
    target.save_pretrained(tmp_path / "target")  # a target directory: only its embedding matrix is read
    convert_checkpoint(tmp_path / "ours", tmp_path / "out", "vllm", target=str(tmp_path / "target"))
    assert torch.equal(tensors(tmp_path / "out")["embed_tokens.weight"], drafter.embed_tokens.weight)


def test_cli_convert(tmp_path, target, capsys):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    drafter.save_pretrained(tmp_path / "ours")
    assert (
        cli_main(
            [
                "convert",
                str(tmp_path / "ours"),
                str(tmp_path / "spec"),
                "--to",
                "speculators",
                "--target-layer-ids",
                "2",
                "4",
                "5",
                "--num-speculative-tokens",
                "5",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "(hf-eagle31) ->" in out and "[2, 4, 5]" in out
    config = json.loads((tmp_path / "spec" / "config.json").read_text())
    assert config["speculators_config"]["proposal_methods"][0]["speculative_tokens"] == 5
    assert cli_main(["convert", str(tmp_path / "ours"), str(tmp_path / "spec"), "--to", "vllm"]) == 2
    assert re.search(r"^hf-eagle31 convert: error: .*not empty.*--overwrite", capsys.readouterr().err, re.M)
    # back to hf-eagle31: the variant is named from the registry, and the checkpoint gets its model card
    assert cli_main(["convert", str(tmp_path / "spec"), str(tmp_path / "back"), "--to", "hf-eagle31"]) == 0
    assert "EAGLE-3.1:" in capsys.readouterr().out
    assert "EAGLE-3.1 drafter" in (tmp_path / "back" / "README.md").read_text()


# --------------------------------------------------------------------------- config keys a reader does not know


def source_in(fmt, target, path):
    """A checkpoint of `fmt` as published (EAGLE: SafeAILab's; vLLM: our export), and the config to edit in it."""
    if fmt == "eagle":
        src = write_safeailab(make_drafter(target, "eagle3", draft_vocab_size=40), path)
    elif fmt == "speculators":
        src = write_speculators(make_drafter(target, "eagle3.1", draft_vocab_size=48), path)
    else:
        make_drafter(target, "eagle3.1", draft_vocab_size=48).save_pretrained(path.with_name("ours"))
        src = path.with_name("ours")
        if fmt == "vllm":
            convert_checkpoint(src, path, "vllm")
            src = path
    return src


def edited(src, edit):
    config = json.loads((src / "config.json").read_text())
    edit(config)
    (src / "config.json").write_text(json.dumps(config))
    return src


@pytest.mark.parametrize("fmt", ["eagle", "vllm", "speculators", "hf-eagle31"])
def test_config_keys_the_reader_does_not_know_are_refused_not_dropped(tmp_path, target, fmt, capsys):
    """A newer variant's switch on a known format (here `use_eagle4_attention`) would be dropped by a reader that
    ignores what it does not know, converting a different model under the same weights: refused in one line, per
    format, at the top level and in the nested configs each reader takes; an unimplemented Llama option (mlp_bias)
    and partial rotary likewise. Keys that do not change the model still convert."""
    src = source_in(fmt, target, tmp_path / "src")
    read_checkpoint(src, target_config=target.config)  # as written: fine
    top = edited(src, lambda c: c.update(use_eagle4_attention=True))
    pattern = (
        r"Eagle3Config has no setting `use_eagle4_attention`"
        if fmt == "hf-eagle31"
        else rf"config.json has `use_eagle4_attention`, which the hf-eagle31 {fmt} reader does not know.*delete it"
    )
    with pytest.raises(ValueError, match=pattern):
        read_checkpoint(top, target_config=target.config)
    assert cli_main(["convert", str(top), str(tmp_path / "out"), "--to", "hf-eagle31"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert re.match(rf"hf-eagle31 convert: error: .*{pattern}", err[-1]) and not (tmp_path / "out").exists()
    edited(src, lambda c: c.pop("use_eagle4_attention"))

    def partial_rotary(c):
        layer = c.get("transformer_layer_config", c)
        layer["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}

    with pytest.raises(ValueError, match="partial_rotary_factor=0.5: hf-eagle31 drafters rotate whole"):
        read_checkpoint(edited(src, partial_rotary), target_config=target.config)
    edited(src, lambda c: c.get("transformer_layer_config", c).pop("rope_parameters"))
    if fmt == "hf-eagle31":
        return
    if fmt == "speculators":
        nested = edited(src, lambda c: c["transformer_layer_config"].update(qk_norm=True))
        with pytest.raises(ValueError, match="config.json transformer_layer_config has `qk_norm`"):
            read_checkpoint(nested, target_config=target.config)
        edited(src, lambda c: c["transformer_layer_config"].pop("qk_norm"))
    else:
        nested = edited(src, lambda c: c.update(eagle_config={"use_aux_hidden_state": True, "tree_mode": "eagle4"}))
        with pytest.raises(ValueError, match="config.json eagle_config has `tree_mode`"):
            read_checkpoint(nested, target_config=target.config)
        edited(src, lambda c: c.update(eagle_config={"use_aux_hidden_state": False}))
        with pytest.raises(ValueError, match="sets use_aux_hidden_state=False, which the EAGLE-3 drafter does not"):
            read_checkpoint(src, target_config=target.config)
        edited(src, lambda c: c.pop("eagle_config"))
        with pytest.raises(ValueError, match="sets mlp_bias=True"):
            read_checkpoint(edited(src, lambda c: c.update(mlp_bias=True)), target_config=target.config)
        # what published configs carry that does not change the model: Llama's training-only options, Qwen's
        # window fields copied by SpecForge configs (window off), transformers 4's generation defaults, metadata
        harmless = dict(
            mlp_bias=False, attention_dropout=0.0, pretraining_tp=1, max_window_layers=36, sliding_window=4096,
            use_sliding_window=False, max_length=20, _name_or_path="x", eagle_config={"use_aux_hidden_state": True},
        )  # fmt: skip
        read_checkpoint(edited(src, lambda c: c.update(harmless)), target_config=target.config)
        with pytest.raises(ValueError, match="sets use_sliding_window=True"):
            read_checkpoint(edited(src, lambda c: c.update(use_sliding_window=True)), target_config=target.config)


# --------------------------------------------------------------------------- from_pretrained: other layouts in memory


def write_vllm_layout(drafter, path):
    """A vLLM-layout directory (`layers.N.*`, switches and aux ids at the top level), as `convert --to vllm` writes."""
    drafter.save_pretrained(path.with_name(path.name + "-ours"))
    convert_checkpoint(path.with_name(path.name + "-ours"), path, "vllm")
    return path


def assert_same_drafter(loaded, reference, embeddings=True):
    """Same config (but where it was loaded from) and the same tensors, dtypes included (embeddings only when the
    checkpoint holds them: otherwise neither loader has real ones)."""
    mine, theirs = loaded.config.to_dict(), reference.config.to_dict()
    mine.pop("_name_or_path"), theirs.pop("_name_or_path")
    assert mine == theirs
    a, b = loaded.state_dict(), reference.state_dict()
    if not embeddings:
        a.pop("embed_tokens.weight"), b.pop("embed_tokens.weight")
    assert_same_tensors(a, b)
    assert loaded.embeddings_ready == reference.embeddings_ready == embeddings


# (source writer, from_pretrained / convert options, whether the source holds embeddings)
LAYOUTS = {
    "safeailab": (lambda d, p: write_safeailab(d, p), {}, False),
    "specforge-3.1": (lambda d, p: write_specforge_31(d, p), {"norm_output_semantics": "post-norm-feed"}, True),
    "speculators": (lambda d, p: write_speculators(d, p), {}, True),
    "vllm": (write_vllm_layout, {}, True),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_from_pretrained_converts_other_layouts_in_memory_like_a_convert_round_trip(tmp_path, target, layout):
    """`Eagle3Drafter.from_pretrained` on a foreign layout = `convert --to hf-eagle31` + `from_pretrained` of the
    result (config and tensors bit for bit), drafts like the producer's drafter, and saves our layout."""
    write, options, embeddings = LAYOUTS[layout]
    variant = "eagle3" if layout == "safeailab" else "eagle3.1"
    drafter = make_drafter(target, variant, draft_vocab_size=40)
    src = write(drafter, tmp_path / layout)
    loaded = Eagle3Drafter.from_pretrained(src, target_config=target.config, **options)
    convert_checkpoint(src, tmp_path / "converted", "hf-eagle31", target_layer_ids=[2, 4, 5], **options)
    reference = Eagle3Drafter.from_pretrained(tmp_path / "converted", target_config=target.config)
    reference.config.target_num_hidden_layers = loaded.config.target_num_hidden_layers  # (convert had no --target)
    assert_same_drafter(loaded, reference, embeddings)
    loaded.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["model_type"] == "eagle3_drafter"
    assert (tmp_path / "saved" / "checkpoint_formats.py").is_file()  # the reading rules travel as remote code
    assert_same_drafter(Eagle3Drafter.from_pretrained(tmp_path / "saved"), loaded, embeddings)
    assert drafting_trace(target, loaded) == drafting_trace(target, drafter)


def test_from_pretrained_of_mixed_dtypes_loads_as_the_round_trip_does(tmp_path):
    """SpecForge's fp32 export with bf16 embeddings: the round trip keeps both dtypes on disk and transformers loads it
    in the dtype save_pretrained records (the embeddings'); in memory, the same; `dtype=` casts both the same way."""
    from test_interop import write_specforge

    target = tiny_target()
    producer = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    producer.embed_tokens.weight.data = target.get_input_embeddings().weight.detach().to(torch.bfloat16)
    src = write_specforge(producer, tmp_path / "specforge", "post-879")
    options = {"norm_output_semantics": "post-norm-feed", "target_layer_ids": [2, 4, 5]}
    convert_checkpoint(src, tmp_path / "converted", "hf-eagle31", **options)
    for dtype in ({}, {"dtype": torch.float32}):
        loaded = Eagle3Drafter.from_pretrained(src, **options, **dtype)
        assert_same_drafter(loaded, Eagle3Drafter.from_pretrained(tmp_path / "converted", **dtype))
    assert Eagle3Drafter.from_pretrained(src, **options).fc.weight.dtype == torch.bfloat16


def test_from_pretrained_refuses_what_convert_refuses_naming_its_own_options(tmp_path, target):
    """The same rules as convert, with the fix spelled as `from_pretrained` takes it."""
    from hf_eagle31 import MtpDrafter

    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    specforge = write_specforge_31(drafter, tmp_path / "specforge")
    with pytest.raises(ValueError, match=r"pass target_config= \(the target's config\) or target_layer_ids=\[\.\.\.\]"):
        Eagle3Drafter.from_pretrained(specforge, norm_output_semantics="post-norm-feed")
    with pytest.raises(ValueError, match=r"pass norm_output_semantics='post-norm-feed' .* or 'pre-norm-feed'"):
        Eagle3Drafter.from_pretrained(specforge, target_config=target.config)
    edited(specforge, lambda c: c.update(use_eagle4_attention=True))
    with pytest.raises(ValueError, match=r"`use_eagle4_attention`.*pass ignore_config_keys=\['use_eagle4_attention'\]"):
        Eagle3Drafter.from_pretrained(specforge, target_config=target.config, norm_output_semantics="post-norm-feed")
    loaded = Eagle3Drafter.from_pretrained(
        specforge,
        target_config=target,  # the target itself is accepted too
        norm_output_semantics="post-norm-feed",
        ignore_config_keys=["use_eagle4_attention"],
    )
    assert drafting_trace(target, loaded) == drafting_trace(target, drafter)
    with pytest.raises(ValueError, match="has no `not_there` to ignore"):
        Eagle3Drafter.from_pretrained(specforge, target_config=target, ignore_config_keys=["not_there"])
    with pytest.raises(ValueError, match="expects a target vocab size of 64 but the target given has 100"):
        Eagle3Drafter.from_pretrained(
            specforge,
            target_config=tiny_target(vocab_size=100).config,
            norm_output_semantics="post-norm-feed",
            ignore_config_keys=["use_eagle4_attention"],
        )
    with pytest.raises(ValueError, match="`quantization_config` does not apply"):
        Eagle3Drafter.from_pretrained(specforge, target_config=target, quantization_config={})
    with pytest.raises(ValueError, match="load it with Eagle3Drafter.from_pretrained, which converts it in memory"):
        MtpDrafter.from_pretrained(specforge)


def test_hub_ids_resolve_as_transformers_resolves_them(tmp_path, target):
    """A Hub id in transformers' cache (offline, `local_files_only`): found with transformers' own resolver, with
    `cache_dir`, `revision` and `subfolder` as from_pretrained takes them."""
    drafter = make_drafter(target, "eagle3", draft_vocab_size=40)
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "cache" / "models--org--eagle3-drafter" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    write_safeailab(drafter, snapshot / "drafter")
    (tmp_path / "cache" / "models--org--eagle3-drafter" / "refs").mkdir()
    (tmp_path / "cache" / "models--org--eagle3-drafter" / "refs" / "main").write_text(commit)
    hub = {"cache_dir": tmp_path / "cache", "local_files_only": True, "subfolder": "drafter"}
    loaded = Eagle3Drafter.from_pretrained("org/eagle3-drafter", target_config=target.config, **hub)
    assert drafting_trace(target, loaded) == drafting_trace(target, drafter)
    with pytest.raises((OSError, ValueError)):
        Eagle3Drafter.from_pretrained("org/eagle3-drafter", target_config=target.config, **{**hub, "revision": "v2"})


# --------------------------------------------------------------------------- targets that carry their own MTP layers


def mtp_targets(root):
    """Tiny targets whose checkpoints carry MTP layer counts as their families publish them (DeepSeek-V3: MLA + MoE
    MTP block; GLM-4.5 MoE: MoE MTP block; Qwen3-Next: hybrid linear attention, `mtp_num_hidden_layers`)."""
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, Glm4MoeConfig, Glm4MoeForCausalLM

    from conftest import tiny_hybrid_target, tiny_sizes

    moe = dict(n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, n_group=1, topk_group=1)
    deepseek = DeepseekV3Config(
        **tiny_sizes(num_hidden_layers=2), **moe, kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=4,
        qk_nope_head_dim=4, v_head_dim=8, first_k_dense_replace=1, num_nextn_predict_layers=1,
    )  # fmt: skip
    glm = Glm4MoeConfig(**tiny_sizes(num_hidden_layers=2), **moe, first_k_dense_replace=1, num_nextn_predict_layers=1)
    paths = {}
    for name, model in (("deepseek_v3", DeepseekV3ForCausalLM(deepseek)), ("glm4_moe", Glm4MoeForCausalLM(glm))):
        model.save_pretrained(root / name)
        paths[name] = root / name
    tiny_hybrid_target().save_pretrained(root / "qwen3_next")
    config = json.loads((root / "qwen3_next" / "config.json").read_text())
    (root / "qwen3_next" / "config.json").write_text(json.dumps({**config, "mtp_num_hidden_layers": 1}))
    paths["qwen3_next"] = root / "qwen3_next"
    return paths


def test_a_target_with_its_own_mtp_layers_is_named_and_refused_in_one_line(tmp_path, capsys):
    """Not "cannot tell the format" (nor a `first_k_dense_replace` refusal with --from vllm): what the checkpoint is,
    how transformers drafts with it, and why MtpDrafter cannot hold its MTP block."""
    from hf_eagle31 import MtpDrafter

    reasons = {
        "deepseek_v3": r"its attention is MLA .*; its MTP block has a MoE MLP",
        "glm4_moe": r"its MTP block has a MoE MLP",
        "qwen3_next": r"it is a hybrid \(linear-attention",
    }
    for name, path in mtp_targets(tmp_path).items():
        message = rf"`{name}` target with 1 MTP layer\(s\) .*use_mtp=True.*cannot hold them: {reasons[name]}"
        with pytest.raises(ValueError, match=message):
            detect_format(path)
        with pytest.raises(ValueError, match=message):
            read_checkpoint(path, format="vllm")
        for drafter_class in (Eagle3Drafter, MtpDrafter):
            with pytest.raises(ValueError, match=message):
                drafter_class.from_pretrained(path)
        capsys.readouterr()
        assert cli_main(["convert", str(path), str(tmp_path / f"{name}-out"), "--to", "hf-eagle31"]) == 2
        assert re.fullmatch(rf"hf-eagle31 convert: error: .*{message}.*", capsys.readouterr().err.strip())
