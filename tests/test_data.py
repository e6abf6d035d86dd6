"""Data preparation: chat-template tokenization, assistant-only loss masks, bad input, self-distillation,
draft vocab."""

import json
import os

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from hf_eagle31.data import (
    REPORT_NAME,
    load_prepared,
    prepare_dataset,
    regenerate_conversations,
    tokenize_conversation,
    tokenize_conversations,
)
from hf_eagle31.training.draft_vocab import build_draft_vocab, count_token_frequencies, draft_vocab_from_dataset

from conftest import tiny_target


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
WORDS = [
    "system",
    "user",
    "assistant",
    "hello",
    "hi",
    "there",
    "how",
    "are",
    "you",
    "fine",
    "thanks",
    "what",
    "is",
    "two",
    "plus",
    "four",
    "be",
    "brief",
    "ok",
    "bye",
    ".",
]


def chat_tokenizer(template=CHATML):
    """A 64-token word-level tokenizer with a ChatML template (matches the 64-token tiny target)."""
    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    for i in range(len(vocab), 64):
        vocab[f"w{i}"] = i
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = template
    return tok


def conv(*pairs, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    for user, assistant in pairs:
        messages.append({"role": "user", "content": user})
        if assistant is not None:
            messages.append({"role": "assistant", "content": assistant})
    return messages


# ------------------------------------------------------------------------------------------------ tokenization


def test_loss_mask_covers_assistant_turns_only():
    tok = chat_tokenizer()
    messages = conv(("hello there", "hi . how are you"), ("what is two plus two", "four"), system="be brief")
    ids, mask, info = tokenize_conversation(tok, messages)
    assert not info["truncated"] and not info["template_fallback"]
    assert len(ids) == len(mask)
    masked = tok.convert_ids_to_tokens([i for i, m in zip(ids, mask) if m])
    # Each reply plus its end-of-turn marker; never a role name, user text or the system prompt.
    assert masked == "hi . how are you <|im_end|> four <|im_end|>".split()
    unmasked = tok.convert_ids_to_tokens([i for i, m in zip(ids, mask) if not m])
    assert "assistant" in unmasked and "hello" in unmasked and "brief" in unmasked


def test_template_that_rewrites_history_falls_back_to_search_and_is_reported():
    # This template drops every assistant reply except the last: not prefix-consistent.
    template = (
        "{% for m in messages %}{% if m['role'] != 'assistant' or loop.last %}<|im_start|>{{ m['role'] }}\n"
        "{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok = chat_tokenizer(template)
    records, report = tokenize_conversations(
        tok, [conv(("hello", "hi"), ("how are you", "fine thanks"))], show_progress=False
    )
    assert report.template_fallbacks == 1
    r = records[0]
    # The first reply is not in the rendered text (nothing to mask); the last one is found with its end marker.
    masked = tok.convert_ids_to_tokens([i for i, m in zip(r["input_ids"], r["loss_mask"]) if m])
    assert masked == ["fine", "thanks", "<|im_end|>"]


def test_bad_input_is_counted_never_silently_dropped():
    tok = chat_tokenizer()
    long_reply = " ".join(["ok"] * 40)
    conversations = [
        conv(("hello", "hi there")),  # kept
        conv(("hello", None)),  # no assistant turn
        [],  # empty
        conv(("", "")),  # only empty text
        "not a conversation",  # bad format
        conv(("hello", long_reply)),  # truncated, still has assistant tokens
        conv((" ".join(["hello"] * 40), "hi")),  # assistant text entirely past max_length
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},  # ShareGPT shape
    ]
    records, report = tokenize_conversations(tok, conversations, max_length=24, show_progress=False)
    assert report.conversations_in == 8
    assert report.kept == len(records) == 3
    assert report.truncated == 1
    assert report.dropped_no_assistant_turn == 1
    assert report.dropped_empty == 2
    assert report.dropped_bad_format == 1
    assert report.dropped_no_assistant_tokens_within_max_length == 1
    assert report.examples["dropped_bad_format"] == 4
    dropped = sum(v for k, v in vars(report).items() if k.startswith("dropped_"))
    assert report.kept + dropped == report.conversations_in  # every input accounted for
    assert all(len(r["input_ids"]) <= 24 for r in records)
    assert "truncated" in report.summary() and "no_assistant_turn=1" in report.summary()


def test_tokenizer_without_chat_template_is_a_clear_error():
    tok = chat_tokenizer(template=None)
    with pytest.raises(ValueError, match="no chat template.*--chat-template"):
        tokenize_conversations(tok, [conv(("hello", "hi"))])


def test_prepare_dataset_saves_and_loads(tmp_path):
    tok = chat_tokenizer()
    data, report = prepare_dataset(
        tok,
        [conv(("hello", "hi")), conv(("hi", None))],
        out_dir=str(tmp_path / "d"),
        max_length=64,
        show_progress=False,
    )
    loaded = load_prepared(str(tmp_path / "d"))
    assert len(loaded) == 1 and loaded[0]["input_ids"] == data[0]["input_ids"]
    assert json.load(open(tmp_path / "d" / REPORT_NAME))["dropped_no_assistant_turn"] == 1
    with pytest.raises(ValueError, match="prepare-data"):
        load_prepared(str(tmp_path / "missing"))


def test_several_prepared_sets_concatenate_in_order(tmp_path):
    tok = chat_tokenizer()
    first, _ = prepare_dataset(
        tok, [conv(("hello", "hi"))], out_dir=str(tmp_path / "a"), max_length=64, show_progress=False
    )
    second, _ = prepare_dataset(
        tok,
        [conv(("how are you", "fine")), conv(("bye", "see you"))],
        out_dir=str(tmp_path / "b"),
        max_length=64,
        show_progress=False,
    )
    both = load_prepared([str(tmp_path / "a"), str(tmp_path / "b")])
    assert [r["input_ids"] for r in both] == [first[0]["input_ids"]] + [r["input_ids"] for r in second]
    assert [r["loss_mask"] for r in both] == [first[0]["loss_mask"]] + [r["loss_mask"] for r in second]


# ------------------------------------------------------------------------------------------------ self-distillation


def test_regeneration_keeps_prompts_is_batched_resumable_and_seeded(tmp_path):
    tok = chat_tokenizer()
    target = tiny_target()
    conversations = [
        conv(("hello", "ORIGINAL"), ("how are you", "ORIGINAL"), system="be brief"),
        conv(("what is two plus two", "ORIGINAL")),
        conv(("hi", None)),  # no reply yet: regeneration answers it
        [{"role": "system", "content": "be brief"}],  # no user turn: nothing to answer, reported downstream
        conv(("bye", "ORIGINAL")),
    ]
    kw = dict(batch_size=2, max_new_tokens=5, temperature=1.0, seed=3, show_progress=False)
    out = regenerate_conversations(target, tok, conversations, str(tmp_path / "a"), **kw)
    first = out[0]
    assert [m["content"] for m in first if m["role"] != "assistant"] == ["be brief", "hello", "how are you"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant"]
    assert all("ORIGINAL" not in m["content"] for c in out if c for m in c)
    assert out[2][-1]["role"] == "assistant" and out[3] is None
    assert len(os.listdir(tmp_path / "a")) == 3 + 1  # 3 batches of <= 2 + meta.json
    # Resume: delete one shard, rerun: the same data (the seed is per batch, not per run).
    os.remove(tmp_path / "a" / "shard_00001.jsonl")
    assert regenerate_conversations(target, tok, conversations, str(tmp_path / "a"), **kw) == out
    # Same seed elsewhere -> same samples; another seed -> different samples.
    assert regenerate_conversations(target, tok, conversations, str(tmp_path / "b"), **kw) == out
    other = regenerate_conversations(target, tok, conversations, str(tmp_path / "c"), **{**kw, "seed": 4})
    assert other != out
    with pytest.raises(ValueError, match="different settings"):
        regenerate_conversations(target, tok, conversations, str(tmp_path / "a"), **{**kw, "seed": 4})


def test_prepare_with_regeneration_reports_everything(tmp_path):
    tok = chat_tokenizer()
    conversations = [conv(("hello", "x")), conv(("hi", None)), [{"role": "system", "content": "be brief"}]]
    data, report = prepare_dataset(
        tok,
        conversations,
        out_dir=str(tmp_path / "d"),
        target=tiny_target(),
        regenerate=True,
        batch_size=2,
        max_new_tokens=4,
        max_length=64,
        show_progress=False,
    )
    assert report.regenerated == 2 and report.regenerated_turns == 2
    assert report.kept == len(data) == 2 and report.dropped_no_assistant_turn == 1
    assert len(load_prepared(str(tmp_path / "d"))) == 2


def test_regeneration_with_a_drafter_writes_the_same_bytes(tmp_path):
    """Greedy self-distillation with the drafter inside generate (a batch of 3 drafting chains, a last batch of 2,
    rows of several turns and lengths) writes byte-identical shards and the same dataset as without it."""
    from hf_eagle31.evaluation.batch_bench import batch_token_budget

    from conftest import make_drafter

    tok = chat_tokenizer()
    target = tiny_target()
    drafter = make_drafter(target, "eagle3.1", seed=5)
    conversations = [
        conv(("hello", "x"), ("how are you", "y"), system="be brief"),
        conv(("what is two plus two", None)),
        conv(("hi", "z")),
        conv(("fine thank you", "a"), ("bye", None)),
        conv(("there you are", "b")),
    ]
    kw = dict(target=target, regenerate=True, batch_size=3, max_new_tokens=12, max_length=128, show_progress=False)
    plain, _ = prepare_dataset(tok, conversations, out_dir=str(tmp_path / "plain"), **kw)
    # the shipped budget runs batches of 2+ rows as plain steps: draft chains in them here (budget 16: K = 4 at 3 rows)
    with batch_token_budget(16):
        drafted, report = prepare_dataset(tok, conversations, out_dir=str(tmp_path / "drafted"), drafter=drafter, **kw)
    stats = drafter.last_speculation_stats
    assert stats is not None and stats.cycles > 0  # the drafter drafted (last call: the batch of 2)
    shards = sorted(os.listdir(tmp_path / "plain" / "regenerated"))
    assert shards == sorted(os.listdir(tmp_path / "drafted" / "regenerated"))
    assert len([s for s in shards if s.startswith("shard_")]) == 2
    for name in shards:
        original = (tmp_path / "plain" / "regenerated" / name).read_bytes()
        assert (tmp_path / "drafted" / "regenerated" / name).read_bytes() == original, name
    assert report.regenerated_turns == 7
    assert report.regeneration_tau >= 1 and "tau" in report.summary()
    assert plain.to_dict() == drafted.to_dict()


# ------------------------------------------------------------------------------------------------ draft vocabulary


def test_draft_vocab_top_d_coverage_and_convention():
    rows = [
        {"input_ids": [5, 7, 7, 9, 9, 9, 3], "loss_mask": [0, 1, 1, 1, 1, 1, 1]},
        {"input_ids": [9, 1, 1, 1, 1], "loss_mask": [1, 0, 0, 0, 1]},
    ]
    counts = count_token_frequencies(rows, vocab_size=12)
    assert counts[9] == 4 and counts[7] == 2 and counts[1] == 1 and counts[5] == 0  # prompt tokens not counted
    vocab = build_draft_vocab(counts, draft_vocab_size=3)
    # 9 (4), 7 (2), then a tie between 1 and 3 (1 each): the lower id wins.
    assert vocab.target_ids.tolist() == [1, 7, 9]
    assert vocab.coverage == pytest.approx(7 / 8)
    assert (torch.arange(3) + vocab.d2t).tolist() == [1, 7, 9]  # target id = draft id + d2t
    assert vocab.t2d.nonzero().flatten().tolist() == [1, 7, 9]
    from hf_eagle31.training import build_drafter

    drafter = build_drafter(tiny_target(vocab_size=12).config, "eagle3.1", draft_vocab_size=3)
    vocab.apply(drafter)
    assert drafter.draft_to_target_ids.tolist() == [1, 7, 9] and torch.equal(drafter.t2d, vocab.t2d)


def test_draft_vocab_rejects_foreign_token_ids(caplog):
    with pytest.raises(ValueError, match="another tokenizer"):
        count_token_frequencies([{"input_ids": [70], "loss_mask": [1]}], vocab_size=64)
    with caplog.at_level("INFO", logger="hf_eagle31"):  # the coverage is logged (library code does not print)
        draft_vocab_from_dataset([{"input_ids": [1, 2, 2], "loss_mask": [1, 1, 1]}], 64, 1)
    assert "cover 66.67%" in caplog.text


def test_keep_first_turns_cuts_before_the_next_user_turn():
    from hf_eagle31.data import keep_first_turns

    chat = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
    ]
    assert keep_first_turns(chat, 1) == chat[:3]
    assert keep_first_turns(chat, 2) == chat and keep_first_turns(chat, None) == chat


def test_prepare_data_cli_drafter(tmp_path, capsys):
    """`prepare-data --drafter D` regenerates the same data as without it; without regeneration it is refused."""
    from hf_eagle31.cli import main

    from conftest import TinyCliSetup

    cli = TinyCliSetup(tmp_path)
    source = tmp_path / "c.jsonl"
    lines = [conv((f"w{i} w{i + 1} w{i + 2}", "w1")) for i in range(3)]
    source.write_text("".join(json.dumps({"messages": m}) + "\n" for m in lines))
    base = ["prepare-data", "--target", str(cli.target_dir), "--source", str(source)]
    regenerating = ["--max-new-tokens", "8", "--batch-size", "2"]
    assert main([*base, *regenerating, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, *regenerating, "--drafter", str(cli.drafter_dirs[0]), "--out", str(tmp_path / "drafted")]) == 0
    for name in ("shard_00000.jsonl", "shard_00001.jsonl"):
        expected = (tmp_path / "plain" / "regenerated" / name).read_bytes()
        assert (tmp_path / "drafted" / "regenerated" / name).read_bytes() == expected
    report = json.loads((tmp_path / "drafted" / REPORT_NAME).read_text())
    assert report["regeneration_drafter"] == str(cli.drafter_dirs[0]) and report["regeneration_tau"] >= 1
    assert json.loads((tmp_path / "plain" / REPORT_NAME).read_text())["regeneration_drafter"] is None
    capsys.readouterr()
    argv = ["prepare-data", "--target", str(cli.target_dir), "--source", str(source), "--no-regenerate"]
    assert main([*argv, "--drafter", str(cli.drafter_dirs[0]), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--drafter has no effect without --regenerate" in err
