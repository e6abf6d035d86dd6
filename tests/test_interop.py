"""
EAGLE-3.1 across tools (issue 26): fixtures in each producer's layout (config fields, key names, dtypes, d2t / t2d
conventions), written by small writers that mirror what each tool writes, and the boundaries where a flag's meaning
or a consumer's loader could turn the drafter into a different model:

- SpecForge `midlayer` exports: before PR #879 `norm_output: true` meant pre-norm-feed (norm before lm_head only), from
  #879 post-norm-feed. Both eras write the same config and keys, so an import needs the meaning: recorded in
  config.json (`norm_output_semantics`, our exports) or `--norm-output-semantics`.
- `--to eagle` of a drafter with switches: SafeAILab EAGLE would drop fc_norm (strict=False): needs
  `--eagle-consumer specforge`.
- `--to speculators` without embeddings: speculators 0.9.0 loads zeros: the target's are written, or it is refused
  (`--allow-missing-embeddings` for vLLM-only use).
- SpecForge `export_to_hf` of an fp32 run carries bf16 embeddings equal to a bf16 target's: accepted.
"""

import copy
import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_convert import (
    assert_same_tensors,
    drafting_trace,
    eagle_weights,
    llama_eagle_config,
    make_drafter,
    tensors,
    write_speculators,
)

from hf_eagle31 import Eagle3Drafter
from hf_eagle31.cli import main as cli_main
from hf_eagle31.commands.info import describe
from hf_eagle31.convert import convert_checkpoint, read_checkpoint
from hf_eagle31.hub import render_model_card

from conftest import tiny_chat_tokenizer, tiny_target


@pytest.fixture(scope="module")
def target():
    return tiny_target()


# --------------------------------------------------------------------------- writers, one per producer


def write_specforge(drafter, path, era, dtype="float32"):
    """SpecForge EAGLE-3.1 export (`export_to_sglang` / `export_to_hf`): `midlayer.*` + `fc_norm.{0,1,2}` + embeddings
    in model.safetensors, top-level `fc_norm: true, norm_output: true`. Both eras write exactly this; what differs is
    what the drafter computed in training: before #879 (`era="pre-879"`) the next chain step was fed the pre-norm
    state, so `drafter` (our model of it) has norm_output=False while its file says true."""
    assert era in ("pre-879", "post-879")
    assert drafter.config.fc_norm and drafter.config.norm_output == (era == "post-879")
    path.mkdir()
    config = llama_eagle_config(drafter, fc_norm=True, norm_output=True, torch_dtype=dtype)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file(eagle_weights(drafter, embeddings=True), path / "model.safetensors")
    return path


def write_vllm(drafter, path):
    """A vLLM-layout EAGLE-3.1 directory (`layers.0.*`, every switch and the aux ids at the top level)."""
    cfg = drafter.config
    path.mkdir()
    config = llama_eagle_config(
        drafter,
        fc_norm=cfg.fc_norm,
        norm_output=cfg.norm_output,
        norm_before_fc=False,
        norm_before_residual=False,
        target_hidden_size=cfg.target_hidden_size,
        eagle_aux_hidden_state_layer_ids=list(cfg.target_layer_ids),
    )
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.clone() for k, v in drafter.state_dict().items()}, path / "model.safetensors")
    return path


def pre_norm_feed(drafter):
    """The same weights with the EAGLE-3 chain (what SpecForge before #879 trained under `norm_output: true`)."""
    other = copy.deepcopy(drafter)
    other.config.norm_output = False
    return other


# --------------------------------------------------------------------------- 1. norm_output: one meaning per boundary


@pytest.mark.parametrize("era", ["pre-879", "post-879"])
def test_specforge_31_import_needs_the_meaning_and_then_drafts_like_the_producer(tmp_path, target, era):
    post = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    producer = post if era == "post-879" else pre_norm_feed(post)
    src = write_specforge(producer, tmp_path / "specforge", era)
    with pytest.raises(ValueError, match=r"--norm-output-semantics post-norm-feed .* or pre-norm-feed"):
        convert_checkpoint(src, tmp_path / "refused", "hf-eagle31", target=target)
    semantics = "post-norm-feed" if era == "post-879" else "pre-norm-feed"
    ckpt = convert_checkpoint(src, tmp_path / "ours", "hf-eagle31", target=target, norm_output_semantics=semantics)
    assert ckpt.config.fc_norm and ckpt.config.norm_output == (era == "post-879")
    converted = Eagle3Drafter.from_pretrained(tmp_path / "ours")
    assert drafting_trace(target, converted) == drafting_trace(target, producer)
    # The two readings are different drafters (they agree on the first drafted token only).
    other = "pre-norm-feed" if semantics == "post-norm-feed" else "post-norm-feed"
    misread = convert_checkpoint(src, tmp_path / "misread", "hf-eagle31", target=target, norm_output_semantics=other)
    assert misread.config.norm_output != ckpt.config.norm_output
    wrong = Eagle3Drafter.from_pretrained(tmp_path / "misread")
    assert drafting_trace(target, wrong)[1] != drafting_trace(target, producer)[1]
    assert "chain feed" in (tmp_path / "ours" / "README.md").read_text()


def test_pre_norm_feed_import_goes_back_to_specforge_without_norm_output(tmp_path, target):
    """An import of a pre-#879 checkpoint is norm_output=False here; its export writes fc_norm only, which every
    SpecForge era, SGLang and vLLM read as the EAGLE-3 chain, and it reimports without the flag."""
    producer = pre_norm_feed(make_drafter(target, "eagle3.1", draft_vocab_size=48))
    src = write_specforge(producer, tmp_path / "specforge", "pre-879")
    convert_checkpoint(src, tmp_path / "ours", "hf-eagle31", target=target, norm_output_semantics="pre-norm-feed")
    convert_checkpoint(tmp_path / "ours", tmp_path / "again", "eagle", eagle_consumer="specforge")
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert config["fc_norm"] is True and "norm_output" not in config and "norm_output_semantics" not in config
    assert_same_tensors(tensors(tmp_path / "again"), load_file(src / "model.safetensors"))
    back = read_checkpoint(tmp_path / "again")
    assert back.config.fc_norm and not back.config.norm_output


def test_our_eagle_export_records_its_meaning_and_a_contradicting_flag_is_refused(tmp_path, target):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    drafter.save_pretrained(tmp_path / "ours")
    convert_checkpoint(tmp_path / "ours", tmp_path / "eagle", "eagle", eagle_consumer="specforge")
    config = json.loads((tmp_path / "eagle" / "config.json").read_text())
    assert (config["norm_output"], config["norm_output_semantics"]) == (True, "post-norm-feed")
    assert read_checkpoint(tmp_path / "eagle").config.norm_output  # the record is the evidence: no flag needed
    assert read_checkpoint(tmp_path / "eagle", norm_output_semantics="post-norm-feed").config.norm_output
    with pytest.raises(ValueError, match="records norm_output_semantics='post-norm-feed' but --norm-output-semantics"):
        read_checkpoint(tmp_path / "eagle", norm_output_semantics="pre-norm-feed")


def test_vllm_and_speculators_norm_output_has_one_meaning(tmp_path, target):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    vllm = write_vllm(drafter, tmp_path / "vllm")
    spec = write_speculators(drafter, tmp_path / "spec")
    for src in (vllm, spec):
        ckpt = read_checkpoint(src)  # no flag needed
        assert ckpt.config.fc_norm and ckpt.config.norm_output
        assert read_checkpoint(src, norm_output_semantics="post-norm-feed").config.norm_output
        with pytest.raises(ValueError, match="means post-norm-feed for every reader"):
            read_checkpoint(src, norm_output_semantics="pre-norm-feed")
    convert_checkpoint(vllm, tmp_path / "ours", "hf-eagle31", target=target)
    assert drafting_trace(target, Eagle3Drafter.from_pretrained(tmp_path / "ours")) == drafting_trace(target, drafter)


def test_plain_eagle3_midlayer_checkpoints_need_no_flag(tmp_path, target):
    drafter = make_drafter(target, "eagle3", draft_vocab_size=40)
    src = tmp_path / "eagle3"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(llama_eagle_config(drafter)))
    torch.save(eagle_weights(drafter, embeddings=False), src / "pytorch_model.bin")
    ckpt = read_checkpoint(src, target_config=target.config)
    assert not ckpt.config.norm_output and not ckpt.config.fc_norm


def test_the_meaning_is_stated_in_words_in_card_info_and_convert(tmp_path, target, capsys):
    post = make_drafter(target, "eagle3.1")
    pre = make_drafter(target, "eagle3")
    assert "post-norm feed" in render_model_card(post) and "pre-norm feed" in render_model_card(pre)
    assert "| chain feed | post-norm feed" in render_model_card(post)
    assert re.search(
        r"chain feed: post-norm feed .*vLLM, SGLang, speculators and SpecForge from PR #879", describe(post)
    )
    assert re.search(r"chain feed: pre-norm feed .*SpecForge before PR #879", describe(pre))
    src = write_specforge(pre_norm_feed(post), tmp_path / "specforge", "pre-879")
    args = ["convert", str(src), str(tmp_path / "ours"), "--to", "hf-eagle31", "--target-layer-ids", "2", "4", "5"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"hf-eagle31 convert: error: config\.json says norm_output: true, .*pre-norm-feed .*\.", err)
    assert cli_main([*args, "--norm-output-semantics", "pre-norm-feed"]) == 0
    captured = capsys.readouterr()
    assert "chain feed: pre-norm feed" in captured.out
    assert "read as pre-norm-feed" in captured.err  # the import note: norm_output=False here, fc_norm kept


# --------------------------------------------------------------------------- 2. exports a consumer would misload


def test_eagle_export_of_31_is_refused_unless_the_consumer_reads_its_switches(tmp_path, target, capsys):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    drafter.save_pretrained(tmp_path / "ours")
    for consumer in (None, "safeailab"):
        with pytest.raises(ValueError, match=r"fc_norm=True, norm_output=True: SafeAILab EAGLE .*strict=False"):
            convert_checkpoint(tmp_path / "ours", tmp_path / f"eagle-{consumer}", "eagle", eagle_consumer=consumer)
    capsys.readouterr()
    assert cli_main(["convert", str(tmp_path / "ours"), str(tmp_path / "cli"), "--to", "eagle"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"hf-eagle31 convert: error: .*drafts as plain EAGLE-3; .*--eagle-consumer specforge.*", err)
    args = ["convert", str(tmp_path / "ours"), str(tmp_path / "sf"), "--to", "eagle", "--eagle-consumer", "specforge"]
    assert cli_main(args) == 0
    err = capsys.readouterr().err
    assert "post-norm-feed" in err and "SpecForge before PR #879" in err  # who reads what was written
    # plain EAGLE-3 needs no flag: SafeAILab EAGLE loads it as it is
    plain = make_drafter(target, "eagle3", draft_vocab_size=48)
    plain.save_pretrained(tmp_path / "plain")
    convert_checkpoint(tmp_path / "plain", tmp_path / "plain-eagle", "eagle")


def test_speculators_export_writes_embeddings_or_refuses(tmp_path, target, capsys):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    drafter.save_pretrained(tmp_path / "ours", include_embeddings=False)
    with pytest.raises(ValueError, match=r"zero embeddings in speculators 0\.9\.0 .*--target .*--allow-missing"):
        convert_checkpoint(tmp_path / "ours", tmp_path / "refused", "speculators")
    convert_checkpoint(tmp_path / "ours", tmp_path / "spec", "speculators", target=target)
    assert torch.equal(tensors(tmp_path / "spec")["embed_tokens.weight"], target.get_input_embeddings().weight)
    convert_checkpoint(tmp_path / "ours", tmp_path / "vllm-only", "speculators", allow_missing_embeddings=True)
    assert "embed_tokens.weight" not in tensors(tmp_path / "vllm-only")
    with_embeddings = tmp_path / "with"
    drafter.save_pretrained(with_embeddings)
    with pytest.raises(ValueError, match="zero embeddings"):  # dropping them on purpose needs the flag too
        convert_checkpoint(with_embeddings, tmp_path / "dropped", "speculators", embeddings="none")
    capsys.readouterr()
    args = ["convert", str(tmp_path / "ours"), str(tmp_path / "cli"), "--to", "speculators"]
    assert cli_main(args) == 2
    assert re.fullmatch(r"hf-eagle31 convert: error: .*--target.*", capsys.readouterr().err.strip())
    assert cli_main([*args, "--allow-missing-embeddings"]) == 0
    assert "speculators 0.9.0 loads zeros" in capsys.readouterr().err


def test_speculators_converters_fc_norm_drop_is_refused(tmp_path, target):
    """speculators 0.9.0's converter keeps `fc_norm: true` but drops `fc_norm.*` from SpecForge-3.1 checkpoints."""
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    src = write_speculators(drafter, tmp_path / "spec")
    weights = load_file(src / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("fc_norm.")}, src / "model.safetensors")
    with pytest.raises(ValueError, match=r"fc_norm=True.*missing keys \['fc_norm\.0\.weight'"):
        read_checkpoint(src)


# ------------------------------------------------------------------------ 3. embeddings checked in the source's dtype


def test_specforge_fp32_export_with_bf16_target_embeddings_is_accepted_and_round_trips(tmp_path):
    """SpecForge `export_to_hf` of an fp32 run: fp32 weights, bf16 embeddings equal to the target's cast to bf16. The
    target read here is fp32 (as a Hub id loads on the CPU): compared in fp32 they differ, in bf16 they are equal."""
    target = tiny_target()
    producer = make_drafter(target, "eagle3.1", draft_vocab_size=48)  # fp32
    own = target.get_input_embeddings().weight.detach().to(torch.bfloat16)
    assert not torch.equal(own.float(), target.get_input_embeddings().weight)  # the old check's comparison
    producer.embed_tokens.weight.data = own.clone()
    src = write_specforge(producer, tmp_path / "specforge", "post-879")
    weights = load_file(src / "model.safetensors")
    assert weights["embed_tokens.weight"].dtype == torch.bfloat16 and weights["fc.weight"].dtype == torch.float32
    ckpt = convert_checkpoint(
        src, tmp_path / "ours", "hf-eagle31", target=target, norm_output_semantics="post-norm-feed"
    )
    assert ckpt.state_dict["embed_tokens.weight"].dtype == torch.bfloat16  # kept as the source has them
    convert_checkpoint(tmp_path / "ours", tmp_path / "again", "eagle", target=target, eagle_consumer="specforge")
    assert_same_tensors(tensors(tmp_path / "again"), weights)
    # a really different embedding matrix is still refused, with its dtype named
    weights["embed_tokens.weight"] = weights["embed_tokens.weight"] + 1
    save_file(weights, src / "model.safetensors")
    with pytest.raises(ValueError, match=r"differ from the target's .*in torch\.bfloat16.*random"):
        convert_checkpoint(src, tmp_path / "bad", "vllm", target=target, norm_output_semantics="post-norm-feed")


# --------------------------------------------------------------------------- 4. round trips in every real layout


@pytest.mark.parametrize("draft_vocab_size", [None, 48])
def test_every_layout_round_trips_bit_for_bit(tmp_path, target, draft_vocab_size):
    """SpecForge (post-#879) -> hf-eagle31 -> vLLM -> speculators -> hf-eagle31 -> EAGLE: the same tensors (d2t offsets
    and t2d masks included; speculators drops them for a full draft vocabulary) and the same drafts."""
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=draft_vocab_size)
    src = write_specforge(drafter, tmp_path / "specforge", "post-879")
    convert_checkpoint(src, tmp_path / "ours", "hf-eagle31", target=target, norm_output_semantics="post-norm-feed")
    convert_checkpoint(tmp_path / "ours", tmp_path / "vllm", "vllm")
    convert_checkpoint(tmp_path / "vllm", tmp_path / "spec", "speculators", target=target)
    spec = tensors(tmp_path / "spec")
    assert ("d2t" in spec) == (draft_vocab_size is not None)
    convert_checkpoint(tmp_path / "spec", tmp_path / "back", "hf-eagle31")
    convert_checkpoint(tmp_path / "back", tmp_path / "eagle", "eagle", eagle_consumer="specforge")
    assert_same_tensors(tensors(tmp_path / "eagle"), load_file(src / "model.safetensors"))
    back = Eagle3Drafter.from_pretrained(tmp_path / "back")
    assert back.config.fc_norm and back.config.norm_output
    if draft_vocab_size:  # target id = draft id + d2t[draft id], as every producer stores it
        d2t = tensors(tmp_path / "back")["d2t"]
        assert torch.equal(d2t, drafter.d2t) and d2t.dtype == torch.int64
    assert drafting_trace(target, back) == drafting_trace(target, drafter)


# --------------------------------------------------------------------------- 5. every --drafter loads other layouts


def test_cli_drafter_loads_a_specforge_checkpoint_with_converts_rules(tmp_path, target, capsys):
    """`--drafter` of any command takes a SpecForge checkpoint as it is: the same refusal as convert (its meaning of
    norm_output), the same flag, and the drafter convert would write, checked against the target."""
    producer = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    src = write_specforge(producer, tmp_path / "specforge", "post-879")
    target.save_pretrained(tmp_path / "target")
    tiny_chat_tokenizer().save_pretrained(tmp_path / "target")
    args = ["info", "--target", str(tmp_path / "target"), "--drafter", str(src), "--max-new-tokens", "4"]
    assert cli_main(args) == 2
    assert re.search(
        r"error: config\.json says norm_output: true, .*--norm-output-semantics post-norm-feed", capsys.readouterr().err
    )
    assert cli_main([*args, "--norm-output-semantics", "post-norm-feed"]) == 0
    out = capsys.readouterr().out
    assert "chain feed: post-norm feed" in out and "target_layer_ids [2, 4, 5]" in out


# --------------------------------------------------------------------------- 6. keys readers read differently


def test_rope_parameters_beside_a_disagreeing_rope_scaling_resolve_as_transformers_does(tmp_path, target, caplog):
    """A speculators layer config holding `rope_parameters` (default) and `rope_scaling` (llama3): speculators builds
    it with `LlamaConfig(**dict)` and vLLM through transformers too, so it is read as the installed transformers reads
    it (rope_scaling wins, with the top-level rope_theta), with a warning naming both; convert reads it the same."""
    from transformers import LlamaConfig

    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    src = write_speculators(drafter, tmp_path / "spec")
    config = json.loads((src / "config.json").read_text())
    layer = config["transformer_layer_config"]
    layer["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "default"}
    layer["rope_scaling"] = {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 256,
    }  # fmt: skip
    layer["rope_theta"] = 500000.0
    (src / "config.json").write_text(json.dumps(config))
    expected = dict(LlamaConfig(**layer).rope_parameters)
    assert expected["rope_type"] == "llama3" and expected["rope_theta"] == 500000.0  # what transformers 5.23-5.25 do
    with caplog.at_level("WARNING"):
        loaded = Eagle3Drafter.from_pretrained(src)
    assert loaded.config.rope_parameters == expected
    assert "rope_parameters=" in caplog.text and "rope_scaling wins" in caplog.text
    assert read_checkpoint(src).config.rope_parameters == expected
    ids = torch.tensor([[3, 17, 42, 8, 25, 11]])
    plain = target.generate(ids, max_new_tokens=12, do_sample=False)
    assert torch.equal(target.generate(ids, max_new_tokens=12, do_sample=False, assistant_model=loaded), plain)


def test_norm_before_residual_in_a_specforge_config_needs_a_reading(tmp_path, target, capsys):
    """SpecForge's and SafeAILab's LlamaForCausalLMEagle3 ignore `norm_before_residual`, vLLM honours it, and no weight
    tells which the producer trained with: refused in one line naming both choices, each of which reads it as that
    consumer runs it."""
    honoured = make_drafter(target, "eagle3", draft_vocab_size=48, norm_before_residual=True)
    ignored = copy.deepcopy(honoured)
    ignored.config.norm_before_residual = False
    ignored.layers[0].norm_before_residual = False
    src = tmp_path / "specforge"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(llama_eagle_config(honoured, norm_before_residual=True)))
    save_file(eagle_weights(honoured, embeddings=True), src / "model.safetensors")
    message = (
        r"norm_before_residual: true .*ignore it .*vLLM honours it"
        r".*ignore_config_keys=\['norm_before_residual'\].*source_format='vllm'"
    )
    with pytest.raises(ValueError, match=message):
        Eagle3Drafter.from_pretrained(src, target_config=target.config)
    as_specforge = Eagle3Drafter.from_pretrained(
        src, target_config=target.config, ignore_config_keys=["norm_before_residual"]
    )
    as_vllm = Eagle3Drafter.from_pretrained(src, target_config=target.config, source_format="vllm")
    assert not as_specforge.config.norm_before_residual and as_vllm.config.norm_before_residual
    assert drafting_trace(target, as_specforge) == drafting_trace(target, ignored)
    assert drafting_trace(target, as_vllm) == drafting_trace(target, honoured)
    assert drafting_trace(target, as_vllm)[1] != drafting_trace(target, as_specforge)[1]  # two different drafters
    args = ["convert", str(src), str(tmp_path / "out"), "--to", "hf-eagle31", "--target-layer-ids", "2", "4", "5"]
    assert cli_main(args) == 2
    assert re.search(r"--ignore-config-key norm_before_residual .* --from vllm", capsys.readouterr().err)
    assert cli_main([*args, "--from", "vllm"]) == 0
    assert Eagle3Drafter.from_pretrained(tmp_path / "out").config.norm_before_residual


def test_other_keys_that_readers_read_differently_are_refused(tmp_path, target):
    """The rest of the class: each reader would take a different value from the same file."""
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=48)
    vllm_dir = write_vllm(drafter, tmp_path / "vllm")

    def refused(src, edit, match, restore):
        config = json.loads((src / "config.json").read_text())
        edit(config)
        (src / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match=match):
            read_checkpoint(src, target_config=target.config)
        restore(config)
        (src / "config.json").write_text(json.dumps(config))
        read_checkpoint(src, target_config=target.config)

    refused(  # a switch at the top level and in eagle_config, set differently
        vllm_dir,
        lambda c: c.update(eagle_config={"fc_norm": False}),
        "fc_norm=True at the top level and fc_norm=False in eagle_config",
        lambda c: c.pop("eagle_config"),
    )
    refused(  # captured layers at the top level (vLLM) and in eagle_config (SGLang), different
        vllm_dir,
        lambda c: c.update(eagle_config={"eagle_aux_hidden_state_layer_ids": [1, 3, 4]}),
        r"eagle_aux_hidden_state_layer_ids=\[2, 4, 5\] at the top level and \[1, 3, 4\] in eagle_config",
        lambda c: c.pop("eagle_config"),
    )
    refused(  # a vocabulary size the d2t / t2d mapping contradicts
        vllm_dir,
        lambda c: c.update(vocab_size=100),
        "vocab_size=100 but t2d maps 64 target tokens",
        lambda c: c.update(vocab_size=64),
    )
    spec = write_speculators(drafter, tmp_path / "spec")
    refused(  # speculators reads an absent norm_before_residual as false, vLLM as true
        spec,
        lambda c: c.pop("norm_before_residual"),
        "no norm_before_residual: speculators reads its absence as false and vLLM as true",
        lambda c: c.update(norm_before_residual=False),
    )
    refused(  # the draft vocabulary given twice
        spec,
        lambda c: c["transformer_layer_config"].update(draft_vocab_size=32),
        r"draft_vocab_size=48 and transformer_layer_config\.draft_vocab_size=32",
        lambda c: c["transformer_layer_config"].pop("draft_vocab_size"),
    )
    sglang = tmp_path / "sglang"  # SGLang's old name for fc_norm.0 beside the new one: readers keep different ones
    sglang.mkdir()
    (sglang / "config.json").write_text(json.dumps(llama_eagle_config(drafter, fc_norm=True)))
    weights = eagle_weights(drafter, embeddings=True)
    weights["aux_norm_low.weight"] = weights["fc_norm.0.weight"] + 1
    save_file(weights, sglang / "model.safetensors")
    with pytest.raises(ValueError, match=r"holds fc_norm\.0\.weight under two names \(aux_norm_low\.\)"):
        read_checkpoint(sglang, target_config=target.config)
