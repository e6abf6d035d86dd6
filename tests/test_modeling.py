"""Drafter models: configs derived from targets, the EAGLE-3.1 switches, TTT == inference, checkpoints."""

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import DynamicCache, Qwen2Config

from hf_eagle31 import Eagle3Config, Eagle3Drafter, MtpConfig, MtpDrafter
from hf_eagle31.modeling.drafter_common import DrafterOutput

from conftest import VARIANTS, make_drafter, tiny_target


# ---------------------------------------------------------------------------------------------- configs


def test_from_target_llama_sizes_and_layer_ids(target):
    cfg = Eagle3Config.from_target(target.config, variant="eagle3.1", draft_vocab_size=48)
    assert (cfg.hidden_size, cfg.target_hidden_size, cfg.vocab_size, cfg.draft_vocab_size) == (32, 32, 64, 48)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (4, 2, 8)
    assert cfg.intermediate_size == 64 and cfg.target_num_hidden_layers == 8
    assert cfg.target_layer_ids == [2, 4, 5]  # (2, L//2, L-3)
    assert cfg.fc_norm and cfg.norm_output and not cfg.norm_before_fc
    base = Eagle3Config.from_target(target.config, variant="eagle3")
    assert not base.fc_norm and not base.norm_output and base.draft_vocab_size == 64


def test_from_target_qwen2_and_mtp():
    qwen = Qwen2Config(
        vocab_size=100,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=12,
        num_attention_heads=6,
        num_key_value_heads=2,
        rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
    )
    cfg = Eagle3Config.from_target(qwen, variant="eagle3.1")
    assert cfg.target_layer_ids == [2, 6, 9] and cfg.head_dim == 8 and cfg.num_key_value_heads == 2
    assert cfg.rope_parameters["rope_theta"] == 50000.0 and cfg.target_model_type == "qwen2"
    mtp = MtpConfig.from_target(qwen, variant="mtp-postnorm")
    assert mtp.target_layer_ids == [12] and mtp.norm_output and mtp.hidden_size == 48


def test_drafter_depth_is_its_own_and_never_the_targets(target, tmp_path):
    """`num_hidden_layers` is the drafter's depth (default 1, whatever the target's); the target's count stays in
    `target_num_hidden_layers`, also when the target config lacks it and the depth is overridden."""
    cfg = Eagle3Config.from_target(target.config)
    assert (cfg.num_hidden_layers, cfg.target_num_hidden_layers) == (1, 8)
    deep = Eagle3Config.from_target(target.config.to_dict(), num_hidden_layers=2, intermediate_size=40)
    assert (deep.num_hidden_layers, deep.target_num_hidden_layers, deep.intermediate_size) == (2, 8, 40)
    sizes = {k: v for k, v in target.config.to_dict().items() if k != "num_hidden_layers"}
    with pytest.raises(ValueError, match="`target_num_hidden_layers=`"):
        MtpConfig.from_target(sizes, num_hidden_layers=2)
    mtp = MtpConfig.from_target(sizes, num_hidden_layers=2, target_num_hidden_layers=6)
    assert (mtp.num_hidden_layers, mtp.target_num_hidden_layers, mtp.target_layer_ids) == (2, 6, [6])
    for bad in (0, "2", 1.5):
        with pytest.raises(ValueError, match="drafter's own depth"):
            Eagle3Config.from_target(target.config, num_hidden_layers=bad)
    drafter = make_drafter(target, "eagle3.1", num_hidden_layers=2, intermediate_size=40)
    assert drafter.layers[1].self_attn.q_proj.in_features == 32 and drafter.layers[1].mlp.up_proj.out_features == 40
    captured = []
    hook = drafter.layers[-1].register_forward_hook(lambda module, args, output: captured.append(output[0]))
    with torch.no_grad():
        out = drafter(torch.randint(0, 64, (1, 5)), target_hidden_states=torch.randn(1, 5, 96))
    hook.remove()
    # EAGLE-3.1 feeds the post-norm output of the *last* layer forward; pre_norm_hidden is that layer's output.
    torch.testing.assert_close(out.pre_norm_hidden, captured[0], rtol=0, atol=0)
    torch.testing.assert_close(out.next_hidden, drafter.norm(captured[0]), rtol=0, atol=0)
    drafter.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["num_hidden_layers"] == 2
    loaded = Eagle3Drafter.from_pretrained(tmp_path).eval()
    ids, feats = torch.randint(0, 64, (1, 6)), torch.randn(1, 6, 96)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(ids, target_hidden_states=feats).logits,
            drafter(ids, target_hidden_states=feats).logits,
            rtol=0,
            atol=0,
        )


def test_from_target_invalid_inputs(target):
    with pytest.raises(ValueError, match=r"out of range.*\[0, 8\]"):
        Eagle3Config.from_target(target.config, target_layer_ids=[2, 4, 9])
    with pytest.raises(ValueError, match="mutually exclusive"):
        Eagle3Config.from_target(target.config, variant="eagle3.1", norm_before_fc=True)
    with pytest.raises(ValueError, match="exactly 3"):
        Eagle3Config.from_target(target.config, target_layer_ids=[2, 4])
    with pytest.raises(ValueError, match="has no `hidden_size`"):
        Eagle3Config.from_target({"model_type": "llama", "num_hidden_layers": 4, "vocab_size": 10})
    with pytest.raises(ValueError, match="unknown variant"):
        Eagle3Config.from_target(target.config, variant="eagle4")
    with pytest.raises(ValueError, match="draft_vocab_size"):
        Eagle3Config.from_target(target.config, draft_vocab_size=65)


def test_target_layer_ids_index_inputs_of_decoder_layers(target):
    """`hidden_states[i]` as requested by the drafter is the *input* of decoder layer i (EAGLE/vLLM convention)."""
    captured = {}
    hooks = [
        layer.register_forward_pre_hook(
            lambda m, args, kw, i=i: captured.__setitem__(i, (args[0] if args else kw["hidden_states"]).clone()),
            with_kwargs=True,
        )
        for i, layer in enumerate(target.model.layers)
    ]
    ids = torch.randint(0, 64, (1, 7))
    ids_list = Eagle3Config.from_target(target.config).target_layer_ids
    out = target(ids, output_hidden_states=ids_list)
    for h in hooks:
        h.remove()
    for i in ids_list:
        torch.testing.assert_close(out.hidden_states[i], captured[i])


# ---------------------------------------------------------------------------------------------- switches


def _chain(drafter, ids, feats, steps=2):
    """Prefill on the features, then `steps` teacher-forced chain steps; returns per-step (logits, fed hidden)."""
    cache = DynamicCache()
    out = drafter(ids[:, 1:], target_hidden_states=feats[:, :-1], cache=cache)
    results = [(out.logits[:, -1], None)]
    hidden = out.next_hidden[:, -1:]
    for j in range(steps):
        fed = hidden
        out = drafter(ids[:, -1:] * 0 + j + 1, hidden_states=fed, cache=cache)
        hidden = out.next_hidden
        results.append((out.logits[:, -1], fed))
    return results


def test_fc_norm_switch_changes_modules_and_output(target):
    on = make_drafter(target, "eagle3.1")
    off = make_drafter(target, "eagle3")
    assert len(on.fc_norm) == 3 and not hasattr(off, "fc_norm")
    assert len({id(n.weight) for n in on.fc_norm}) == 3  # one separate RMSNorm (own weight) per captured state
    off.load_state_dict(on.state_dict(), strict=False)
    ids, feats = torch.randint(0, 64, (1, 6)), torch.randn(1, 6, 96)
    # fc_norm makes the drafter invariant to the scale of each captured state; EAGLE-3 is not.
    scaled = feats * torch.tensor([10.0] * 32 + [0.1] * 32 + [3.0] * 32)
    assert torch.allclose(_chain(on, ids, feats)[2][0], _chain(on, ids, scaled)[2][0], atol=1e-4)
    assert not torch.allclose(_chain(off, ids, feats)[2][0], _chain(off, ids, scaled)[2][0], atol=1e-2)


@pytest.mark.parametrize("family", ["eagle", "mtp"])
def test_norm_output_feeds_post_norm_state_to_next_step(target, family):
    on = make_drafter(target, "eagle3.1" if family == "eagle" else "mtp-postnorm")
    off = make_drafter(target, "eagle3.1" if family == "eagle" else "mtp", norm_output=False)
    off.load_state_dict(on.state_dict())
    with torch.no_grad():
        on.norm.weight.uniform_(0.5, 1.5)
        off.norm.weight.copy_(on.norm.weight)
    width = 96 if family == "eagle" else 32
    ids, feats = torch.randint(0, 64, (1, 6)), torch.randn(1, 6, width) * 5
    res_on, res_off = _chain(on, ids, feats), _chain(off, ids, feats)
    torch.testing.assert_close(res_on[0][0], res_off[0][0])  # prefill logits identical: only the chain differs
    out = on(ids[:, 1:], target_hidden_states=feats[:, :-1])
    torch.testing.assert_close(res_on[1][1], on.norm(out.pre_norm_hidden)[:, -1:])
    torch.testing.assert_close(res_off[1][1], out.pre_norm_hidden[:, -1:])
    assert not torch.allclose(res_on[2][0], res_off[2][0], atol=1e-3)  # second chain step differs


# ---------------------------------------------------------------------------------------------- TTT == inference


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS)
def test_ttt_logits_equal_step_by_step_inference(target, variant, depth):
    drafter = make_drafter(target, variant, draft_vocab_size=40, num_hidden_layers=depth)
    assert len(drafter.layers) == depth
    n, steps = 12, 4
    width = 96 if variant.startswith("eagle") else 32
    torch.manual_seed(3)
    ids, feats = torch.randint(0, 64, (2, n)), torch.randn(2, n, width)
    with torch.no_grad():
        ttt = drafter.ttt_forward(ids, feats, ttt_steps=steps)
        for t in (0, 3, 7):
            cache = DynamicCache()
            out = drafter(ids[:, 1 : t + 2], target_hidden_states=feats[:, : t + 1], cache=cache)
            torch.testing.assert_close(out.logits, ttt[0][:, : t + 1], atol=1e-5, rtol=1e-4)
            last = drafter(ids[:, 1 : t + 2], target_hidden_states=feats[:, : t + 1], logits_to_keep=1).logits
            assert last.shape[1] == 1 and torch.allclose(last[:, 0], out.logits[:, -1], atol=1e-6)
            hidden = out.next_hidden[:, -1:]
            for j in range(1, steps):
                out = drafter(ids[:, t + 1 + j : t + 2 + j], hidden_states=hidden, cache=cache)
                hidden = out.next_hidden
                torch.testing.assert_close(out.logits[:, -1], ttt[j][:, t], atol=1e-5, rtol=1e-4)
                assert cache.get_seq_length() == t + 1 + j
            assert len(cache.layers) == depth and all(layer.get_seq_length() == t + steps for layer in cache.layers)


def test_ttt_step_uses_shifted_tokens_and_positions(target):
    """Changing token x_{t+1+j} changes TTT step-j logits at position t but not at positions < t - an off-by-one
    in the shift would move the effect."""
    drafter = make_drafter(target, "eagle3.1")
    ids, feats = torch.randint(0, 64, (1, 10)), torch.randn(1, 10, 96)
    base = drafter.ttt_forward(ids, feats, 3)
    t, j = 4, 2
    changed = ids.clone()
    changed[0, t + 1 + j] = (changed[0, t + 1 + j] + 1) % 64
    new = drafter.ttt_forward(changed, feats, 3)
    assert not torch.allclose(base[j][:, t], new[j][:, t])
    torch.testing.assert_close(base[j][:, :t], new[j][:, :t])


def test_forward_ttt_steps_returns_a_drafter_output_and_the_deprecated_list(target):
    """`forward(ttt_steps=N, return_dict=True)` (the trainer's call) gives `ttt_forward`'s logits as
    `DrafterOutput.ttt_logits` without a warning; the old bare call still returns the list, with a FutureWarning."""
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=40)
    ids, feats = torch.randint(0, 64, (2, 9)), torch.randn(2, 9, 96)
    with torch.no_grad():
        expected = drafter.ttt_forward(ids, feats, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            out = drafter(input_ids=ids, target_hidden_states=feats, ttt_steps=3, return_dict=True)
        with pytest.warns(FutureWarning, match="ttt_forward"):
            legacy = drafter(input_ids=ids, target_hidden_states=feats, ttt_steps=3)
    assert isinstance(out, DrafterOutput) and out.logits is None and len(out.ttt_logits) == 3
    assert isinstance(legacy, list) and len(legacy) == 3
    for step, (want, new, old) in enumerate(zip(expected, out.ttt_logits, legacy)):
        assert torch.equal(new, want) and torch.equal(old, want), step


@pytest.mark.parametrize("variant", ["eagle3", "eagle3.1"])
def test_output_names_and_their_deprecated_aliases(target, variant):
    """`next_hidden` feeds the next chain step (norm(a) with `norm_output`), `pre_norm_hidden` is a; the old names
    are read-only aliases that warn."""
    drafter = make_drafter(target, variant)
    ids, feats = torch.randint(0, 64, (1, 6)), torch.randn(1, 6, 96)
    with torch.no_grad():
        out = drafter(ids[:, 1:], target_hidden_states=feats[:, :-1])
        fed = drafter.norm(out.pre_norm_hidden) if drafter.config.norm_output else out.pre_norm_hidden
    assert torch.equal(out.next_hidden, fed)
    assert list(out.keys()) == ["logits", "next_hidden", "pre_norm_hidden", "cache"]  # positional order kept
    with pytest.warns(FutureWarning, match="next_hidden"):
        assert out.hidden_states is out.next_hidden
    with pytest.warns(FutureWarning, match="pre_norm_hidden"):
        assert out.last_hidden_state is out.pre_norm_hidden
    with pytest.raises(AttributeError):
        out.hidden_states = out.next_hidden


# ---------------------------------------------------------------------------------------------- checkpoints


def _outputs(drafter, width=96):
    torch.manual_seed(5)
    ids, feats = torch.randint(0, 64, (1, 8)), torch.randn(1, 8, width)
    with torch.no_grad():
        return torch.stack([r[0] for r in _chain(drafter, ids, feats, steps=3)])


def test_switches_off_checkpoint_loads_and_reproduces(target, tmp_path):
    drafter = make_drafter(target, "eagle3", draft_vocab_size=48)
    drafter.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["fc_norm"] is False and config["norm_output"] is False
    assert config["auto_map"]["AutoModel"] == "modeling_eagle3.Eagle3Drafter"
    torch.testing.assert_close(_outputs(Eagle3Drafter.from_pretrained(tmp_path)), _outputs(drafter))
    # An older config without the switch keys means "off".
    for key in ("fc_norm", "norm_output", "norm_before_fc", "norm_before_residual"):
        config.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(config))
    old = Eagle3Drafter.from_pretrained(tmp_path)
    assert not old.config.fc_norm and not old.config.norm_output
    torch.testing.assert_close(_outputs(old), _outputs(drafter))
    assert torch.equal(old.d2t, drafter.d2t) and torch.equal(old.t2d, drafter.t2d)


def test_random_embeddings_are_never_saved(target, tmp_path):
    drafter = Eagle3Drafter(Eagle3Config.from_target(target.config))
    with pytest.raises(ValueError, match="load_target_embeddings"):
        drafter.save_pretrained(tmp_path / "a")
    with pytest.raises(ValueError, match="load_target_embeddings"):
        drafter(torch.zeros(1, 2, dtype=torch.long), target_hidden_states=torch.zeros(1, 2, 96))
    drafter.save_pretrained(tmp_path / "b", include_embeddings=False)
    assert "embed_tokens.weight" not in load_file(tmp_path / "b" / "model.safetensors")
    loaded, info = Eagle3Drafter.from_pretrained(tmp_path / "b", output_loading_info=True)
    assert not loaded.embeddings_ready and not loaded.config.embeddings_in_checkpoint
    assert not info["missing_keys"]  # absent by design: not reported as a missing weight
    loaded.load_target_embeddings(target)
    assert torch.equal(loaded.embed_tokens.weight, target.get_input_embeddings().weight)
    with pytest.raises(ValueError, match=r"shape \(64, 32\).*\(64, 16\)|expects"):
        MtpDrafter(MtpConfig.from_target(tiny_target(hidden_size=16).config)).load_target_embeddings(target)


def test_corrupted_checkpoint_is_refused(target, tmp_path):
    make_drafter(target, "eagle3.1", draft_vocab_size=48).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["d2t"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="no `d2t`"):
        Eagle3Drafter.from_pretrained(tmp_path)


def test_set_draft_vocab_maps_ids(target):
    drafter = make_drafter(target, "eagle3", draft_vocab_size=4)
    drafter.set_draft_vocab([9, 3, 40, 7])
    assert drafter.draft_to_target_ids.tolist() == [3, 7, 9, 40]
    assert drafter.t2d.nonzero().flatten().tolist() == [3, 7, 9, 40]
    full = drafter.to_target_logits(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert full[0, 40] == 4.0 and torch.isinf(full[0, 0]) and full.shape == (1, 64)
    with pytest.raises(ValueError, match="exactly draft_vocab_size"):
        drafter.set_draft_vocab([1, 2, 3])


def test_lm_head_warm_start_copies_the_target_rows_of_the_draft_vocab(target):
    drafter = make_drafter(target, "eagle3.1", draft_vocab_size=4)
    drafter.set_draft_vocab([9, 3, 40, 7])
    head = target.get_output_embeddings().weight
    drafter.init_lm_head_from_target(head)
    assert torch.equal(drafter.lm_head.weight, head[[3, 7, 9, 40]])
    with pytest.raises(ValueError, match="as wide as its target"):
        drafter.init_lm_head_from_target(head[:, :8])


def test_draft_length_travels_with_the_checkpoint(target, tmp_path):
    drafter = make_drafter(target, "eagle3.1")
    drafter.generation_config.num_assistant_tokens = 3
    drafter.save_pretrained(tmp_path / "d", include_embeddings=False)
    assert Eagle3Drafter.from_pretrained(tmp_path / "d").generation_config.num_assistant_tokens == 3
    (tmp_path / "d" / "generation_config.json").unlink()  # older checkpoints: the default K
    assert Eagle3Drafter.from_pretrained(tmp_path / "d").generation_config.num_assistant_tokens == 6


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_registry_builds_and_recognises_every_variant(target, variant):
    """VARIANTS (modeling/configuration_common.py) is the one table: training, info, hub, drift, convert read it."""
    from hf_eagle31.modeling import VARIANTS as REGISTRY
    from hf_eagle31.modeling import variant_classes, variant_of
    from hf_eagle31.training import build_drafter

    entry = REGISTRY[variant]
    config_class, drafter_class = variant_classes(variant)
    assert config_class.model_type == entry.model_type
    drafter = build_drafter(target.config, variant)
    assert type(drafter) is drafter_class and type(drafter.config) is config_class
    assert {k: getattr(drafter.config, k) for k in entry.switches} == entry.switches
    assert variant_of(drafter.config) is entry
