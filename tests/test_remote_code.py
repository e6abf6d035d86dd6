"""Checkpoints load with `trust_remote_code=True` in a fresh process where `hf_eagle31` cannot be imported, and
generate exactly like plain greedy decoding there."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import make_drafter, tiny_target


# (variant, embeddings saved, drafter depth)
CASES = [
    ("eagle3.1", True, 1),
    ("eagle3.1", False, 1),
    ("mtp-postnorm", True, 1),
    ("eagle3", False, 1),
    ("eagle3.1", False, 2),
]

CHILD = textwrap.dedent(
    """
    import sys, torch
    sys.modules["hf_eagle31"] = None  # any `import hf_eagle31` now fails
    try:
        import hf_eagle31  # noqa: F401
        raise SystemExit("hf_eagle31 is importable in the child")
    except ImportError:
        pass
    from transformers import AutoConfig, AutoModel, LlamaForCausalLM
    target_dir, out_path, *drafter_dirs = sys.argv[1:]
    target = LlamaForCausalLM.from_pretrained(target_dir).eval()
    prompt = torch.tensor([[4, 8, 15, 16, 23, 42]])
    plain = target.generate(prompt, max_new_tokens=20, do_sample=False)
    results = {}
    for drafter_dir in drafter_dirs:
        config = AutoConfig.from_pretrained(drafter_dir, trust_remote_code=True)
        drafter = AutoModel.from_pretrained(drafter_dir, trust_remote_code=True).eval()
        assert type(drafter).__module__.startswith("transformers_modules"), type(drafter).__module__
        # generate() loads the target's embeddings itself when the checkpoint was saved without them
        assisted = target.generate(prompt, max_new_tokens=20, do_sample=False, assistant_model=drafter,
                                   num_assistant_tokens=3)
        torch.manual_seed(0)
        ids, feats = torch.randint(0, 64, (1, 6)), torch.randn(1, 6, 32 * len(config.target_layer_ids))
        with torch.no_grad():
            logits = drafter(ids, target_hidden_states=feats).logits
        results[drafter_dir] = {"logits": logits, "class": type(drafter).__name__, "config": type(config).__name__,
                                "equal": bool(torch.equal(plain, assisted)),
                                "forwards": drafter.last_speculation_stats.target_forwards,
                                "layers": len(drafter.layers)}
    torch.save(results, out_path)
    """
)


@pytest.fixture(scope="module")
def child_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    target = tiny_target()
    target.save_pretrained(root / "target")
    drafters = {}
    for variant, with_embeddings, depth in CASES:
        drafter = make_drafter(target, variant, draft_vocab_size=48, num_hidden_layers=depth)
        path = root / f"{variant}-{with_embeddings}-{depth}"
        drafter.save_pretrained(path, include_embeddings=with_embeddings)
        drafters[(variant, with_embeddings, depth)] = (drafter, path)
    (root / "child.py").write_text(CHILD)
    env = dict(os.environ, HF_MODULES_CACHE=str(root / "modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    paths = [str(p) for _, p in drafters.values()]
    result = subprocess.run(
        [sys.executable, str(root / "child.py"), str(root / "target"), str(root / "out.pt"), *paths],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return drafters, torch.load(root / "out.pt")


@pytest.mark.parametrize("variant,with_embeddings,depth", CASES)
def test_remote_code_round_trip_without_package(child_results, variant, with_embeddings, depth):
    drafters, results = child_results
    drafter, path = drafters[(variant, with_embeddings, depth)]
    family = "eagle3" if variant.startswith("eagle") else "mtp"
    files = {p.name for p in path.iterdir()}
    assert {
        f"modeling_{family}.py",
        f"configuration_{family}.py",
        "candidate_generator.py",
        "drafter_common.py",
        "configuration_common.py",
        "config.json",
        "model.safetensors",
    } <= files
    config = json.loads((path / "config.json").read_text())
    assert config["auto_map"]["AutoConfig"].startswith(f"configuration_{family}.")
    assert config["embeddings_in_checkpoint"] is with_embeddings and config["num_hidden_layers"] == depth
    child = results[str(path)]
    assert child["class"] == type(drafter).__name__ and child["equal"] and child["forwards"] > 0
    assert child["layers"] == depth
    torch.manual_seed(0)
    ids, feats = torch.randint(0, 64, (1, 6)), torch.randn(1, 6, 32 * len(drafter.config.target_layer_ids))
    with torch.no_grad():
        expected = drafter(ids, target_hidden_states=feats).logits
    torch.testing.assert_close(child["logits"], expected)


FOREIGN_CHILD = textwrap.dedent(
    """
    import sys, torch
    sys.modules["hf_eagle31"] = None  # any `import hf_eagle31` now fails
    from transformers import AutoModel, LlamaForCausalLM
    target_dir, ours, foreign, out_path = sys.argv[1:]
    target = LlamaForCausalLM.from_pretrained(target_dir).eval()
    remote_class = type(AutoModel.from_pretrained(ours, trust_remote_code=True))
    assert remote_class.__module__.startswith("transformers_modules"), remote_class.__module__
    try:
        remote_class.from_pretrained(foreign)
        raise SystemExit("an EAGLE checkpoint loaded without its implied layer count")
    except ValueError as error:
        refusal = str(error)
    drafter = remote_class.from_pretrained(foreign, target_config=target.config)
    prompt = torch.tensor([[4, 8, 15, 16, 23, 42]])
    plain = target.generate(prompt, max_new_tokens=20, do_sample=False)
    assisted = target.generate(prompt, max_new_tokens=20, do_sample=False, assistant_model=drafter,
                               num_assistant_tokens=3)
    torch.save({"equal": bool(torch.equal(plain, assisted)), "refusal": refusal,
                "state": {k: v for k, v in drafter.state_dict().items() if k != "embed_tokens.weight"}}, out_path)
    """
)


def test_remote_code_loads_other_layouts_without_package(tmp_path):
    """The remote code every checkpoint carries (no hf_eagle31 importable) loads a SafeAILab EAGLE-3 checkpoint with
    the same rules and tensors as the package, and drafts exactly."""
    from test_convert import write_safeailab

    from hf_eagle31 import Eagle3Drafter

    target = tiny_target()
    target.save_pretrained(tmp_path / "target")
    drafter = make_drafter(target, "eagle3", draft_vocab_size=48)
    drafter.save_pretrained(tmp_path / "ours", include_embeddings=False)
    write_safeailab(drafter, tmp_path / "safeailab")
    (tmp_path / "child.py").write_text(FOREIGN_CHILD)
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    paths = [str(tmp_path / name) for name in ("target", "ours", "safeailab")]
    result = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), *paths, str(tmp_path / "out.pt")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    child = torch.load(tmp_path / "out.pt")
    assert child["equal"] and "pass target_config= (the target's config) or target_layer_ids" in child["refusal"]
    expected = Eagle3Drafter.from_pretrained(tmp_path / "safeailab", target_config=target.config).state_dict()
    expected.pop("embed_tokens.weight")
    assert sorted(child["state"]) == sorted(expected)
    assert all(torch.equal(child["state"][k], expected[k]) for k in expected)
