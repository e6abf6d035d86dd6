"""Prompt suites and `render`, on fixture files and a tiny word-level tokenizer with a ChatML chat template."""

from pathlib import Path

import pytest

from hf_eagle31.data import conversations as sources
from hf_eagle31.data import suites
from hf_eagle31.data.suites import EvalPrompt, render


FIXTURES = Path(__file__).parent / "fixtures"
PATHS = {
    "mtbench": FIXTURES / "mtbench_question.jsonl",
    "humaneval": FIXTURES / "HumanEval.jsonl.gz",
    "gsm8k": FIXTURES / "gsm8k_test.jsonl",
    "sharegpt": FIXTURES / "sharegpt_truncated.json",
    "squad": FIXTURES / "squad.json",
    "pg-essays": FIXTURES / "PaulGrahamEssays.json",
    "hotpotqa": FIXTURES / "hotpotqa.json",
}
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(autouse=True)
def small_fixture_settings(monkeypatch):
    # The fixture files are tiny: hold out every 3rd ShareGPT record and cut essays to 300 characters.
    monkeypatch.setattr(sources, "SHAREGPT_HELDOUT_EVERY", 3)
    monkeypatch.setattr(suites, "ESSAY_EXCERPT_CHARS", 300)


def _words(text: str) -> set:
    return set(text.split())


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level tokenizer over every word the fixtures and prompt frames use, with a ChatML template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = set()
    for fmt in suites.TEXT_FORMATS.values():
        words |= _words(" ".join(fmt.values()).replace("{}", " "))
    for system, _ in suites.PERTURBATIONS.values():
        words |= _words(system or "")
    words |= _words(
        suites._ESSAY_INSTRUCTION + " " + suites._HOTPOT_INSTRUCTION + " Question: Document user assistant system"
    )
    for essay in sources.load_pg_essays(PATHS["pg-essays"]):
        words |= _words(essay["text"])
    for record in sources.load_hotpotqa(PATHS["hotpotqa"]):
        words |= _words(record["question"] + " " + " ".join(p["text"] for p in record["paragraphs"]))
    words |= _words("hello world how are you fine thanks bye")
    vocab = {w: i for i, w in enumerate(["[UNK]", "<|im_start|>", "<|im_end|>"] + sorted(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    return tok


def _tokens(tok, ids):
    return tok.convert_ids_to_tokens(ids)


# ---------------------------------------------------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------------------------------------------------


def test_render_chat_template_turn_by_turn(tokenizer):
    prompt = EvalPrompt("p", "standard", "test", ["hello world", "how are you"])
    assert _tokens(tokenizer, render(tokenizer, prompt)) == [
        "<|im_start|>",
        "user",
        "hello",
        "world",
        "<|im_end|>",
        "<|im_start|>",
        "assistant",
    ]
    # Turn 2 is conditioned on the target's own first answer.
    assert _tokens(tokenizer, render(tokenizer, prompt, history=["fine thanks"])) == [
        "<|im_start|>",
        "user",
        "hello",
        "world",
        "<|im_end|>",
        "<|im_start|>",
        "assistant",
        "fine",
        "thanks",
        "<|im_end|>",
        "<|im_start|>",
        "user",
        "how",
        "are",
        "you",
        "<|im_end|>",
        "<|im_start|>",
        "assistant",
    ]
    with pytest.raises(ValueError, match="has 2 turn"):
        render(tokenizer, prompt, history=["fine", "bye"])


def test_render_system_prompts(tokenizer):
    prompt = EvalPrompt("p", "standard", "test", ["hello"], system="You are a helpful assistant.")
    tokens = _tokens(tokenizer, render(tokenizer, prompt))
    assert tokens[:7] == ["<|im_start|>", "system", "You", "are", "a", "helpful", "assistant."]
    # An explicit system_prompt overrides the prompt's; "" is an empty system turn; None is no system turn.
    assert _tokens(tokenizer, render(tokenizer, prompt, system_prompt="bye"))[:4] == [
        "<|im_start|>",
        "system",
        "bye",
        "<|im_end|>",
    ]
    assert _tokens(tokenizer, render(tokenizer, prompt, system_prompt=""))[:3] == [
        "<|im_start|>",
        "system",
        "<|im_end|>",
    ]
    assert "system" not in _tokens(tokenizer, render(tokenizer, EvalPrompt("q", "standard", "test", ["hello"])))


def test_render_plain_text_formats(tokenizer):
    prompt = EvalPrompt("p", "perturbed", "test", ["hello world", "how are you"], system="bye", template="plain")
    tokens = _tokens(tokenizer, render(tokenizer, prompt, history=["fine"]))
    assert tokens == [
        "bye",
        "User:",
        "hello",
        "world",
        "Assistant:",
        "fine",
        "User:",
        "how",
        "are",
        "you",
        "Assistant:",
    ]
    alpaca = _tokens(tokenizer, render(tokenizer, prompt, chat_template="alpaca"))
    assert alpaca == ["bye", "###", "Instruction:", "hello", "world", "###", "Response:"]
    chat_prompt = EvalPrompt("q", "standard", "test", ["hello"])
    assert "<|im_start|>" not in _tokens(tokenizer, render(tokenizer, chat_prompt, chat_template="plain"))


def test_render_custom_template_and_errors(tokenizer):
    prompt = EvalPrompt("p", "standard", "test", ["hello world"])
    custom = (
        "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant{% endif %}"
    )
    assert _tokens(tokenizer, render(tokenizer, prompt, chat_template=custom)) == [
        "user",
        "hello",
        "world",
        "assistant",
    ]
    assert len(render(tokenizer, prompt, max_length=7)) == 7
    with pytest.raises(ValueError, match="renders to 7 tokens, more than max_length=6"):
        render(tokenizer, prompt, max_length=6)
    with pytest.raises(ValueError, match="unknown template 'xml'"):
        render(tokenizer, EvalPrompt("p", "standard", "test", ["hi"], template="xml"))
    saved, tokenizer.chat_template = tokenizer.chat_template, None
    try:
        with pytest.raises(ValueError, match="no chat template"):
            render(tokenizer, prompt)
    finally:
        tokenizer.chat_template = saved


# ---------------------------------------------------------------------------------------------------------------------
# Suites
# ---------------------------------------------------------------------------------------------------------------------


def test_standard_suite_from_fixtures(tokenizer):
    suite = suites.standard_suite(2, paths=PATHS)
    by_source = {}
    for prompt in suite:
        assert prompt.suite == "standard" and prompt.template == "chat" and prompt.system is None
        by_source.setdefault(prompt.source, []).append(prompt)
    assert set(by_source) == set(suites.STANDARD_SOURCES)
    assert [p.id for p in by_source["mtbench"]] == ["mtbench-81", "mtbench-111"]  # spread over the categories
    assert all(len(p.turns) == 2 for p in by_source["mtbench"])
    assert [p.id for p in by_source["humaneval"]] == ["humaneval-0", "humaneval-1"]
    assert "def add(a: int, b: int)" in by_source["humaneval"][0].turns[0]
    assert by_source["gsm8k"][1].meta["answer"] == "60"
    # Held-out ShareGPT first turns only (records 5 and 8 of the fixture), never training ones.
    assert [p.turns[0] for p in by_source["sharegpt"]] == ["Name a prime number.", "Who wrote Hamlet?"]
    # SQuAD: answerable questions only, context and question in one turn.
    assert [p.id for p in by_source["squad"]] == ["squad-q1", "squad-q3"]
    assert (
        "Passage: The Normans" in by_source["squad"][0].turns[0]
        and "Question: In what country" in by_source["squad"][0].turns[0]
    )
    for p in by_source["pg-essays"]:
        text = p.turns[0]
        assert text.startswith("Summarize this essay.\n\n") and len(text) <= len("Summarize this essay.\n\n") + 300
        assert not text.split("\n\n", 1)[1].startswith(("April", "January", "May", "March", "July"))
    for prompt in suite:
        assert render(tokenizer, prompt)[-2:] == tokenizer.convert_tokens_to_ids(["<|im_start|>", "assistant"])
    with pytest.raises(ValueError, match="has only 4"):
        suites.standard_suite(5, source_names=("mtbench",), paths=PATHS)


def test_perturbed_suite_applies_every_perturbation(tokenizer):
    standard = suites.standard_suite(1, paths=PATHS)
    perturbed = suites.perturbed_suite(1, paths=PATHS)
    assert len(perturbed) == len(standard) * len(suites.PERTURBATIONS)
    assert {p.meta["standard_id"] for p in perturbed} == {p.id for p in standard}
    for prompt in perturbed:
        name = prompt.id.split("@")[1]
        assert (prompt.system, prompt.template) == suites.PERTURBATIONS[name] and prompt.suite == "perturbed"
        tokens = _tokens(tokenizer, render(tokenizer, prompt))
        assert ("<|im_start|>" in tokens) == (prompt.template == "chat")
    long_system = next(p for p in perturbed if p.id.endswith("@system-long-tutor"))
    assert len(render(tokenizer, long_system)) > len(render(tokenizer, standard[0])) + 50
    with pytest.raises(ValueError, match="unknown perturbation"):
        suites.perturbed_suite(1, perturbations=("shout",), paths=PATHS)


def test_long_suite_hits_the_token_lengths(tokenizer):
    lengths = (80, 200)
    suite = suites.long_suite(tokenizer, lengths=lengths, num_per_length=2, paths=PATHS)
    assert [(p.source, p.meta["target_tokens"]) for p in suite] == [
        (s, n) for s in ("pg-essays", "hotpotqa") for n in lengths for _ in range(2)
    ]
    records = {r["question"]: r for r in sources.load_hotpotqa(PATHS["hotpotqa"])}
    for prompt in suite:
        n = len(render(tokenizer, prompt))
        target = prompt.meta["target_tokens"]
        assert prompt.meta["num_tokens"] == n and 0.8 * target <= n <= target, (prompt.id, n)
        if prompt.source == "hotpotqa":
            record = records[prompt.turns[0].rsplit("Question: ", 1)[1]]
            for title in record["supporting_titles"]:  # the gold paragraphs always make it in
                assert f"({title}):" in prompt.turns[0]
            if target == 200:  # the question's own 4 paragraphs are too few: other questions' fill the rest
                assert prompt.meta["num_documents"] > 4
        else:
            assert prompt.turns[0].endswith(suites._ESSAY_INSTRUCTION)
    with pytest.raises(ValueError, match="no room"):
        suites.long_suite(tokenizer, lengths=(5,), num_per_length=1, source_names=("pg-essays",), paths=PATHS)
