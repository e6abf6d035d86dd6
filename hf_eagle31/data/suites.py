"""Prompt suites for evaluating drafters: standard, perturbed (template drift) and long-context.

A drafter is only as good as its acceptance on prompts it was not trained on, rendered the way users render them.
Three suites probe that:

- `standard_suite`: MT-Bench (both turns), HumanEval, GSM8K, held-out ShareGPT (first user turn), SQuAD QA and
  "summarize this essay" over Paul Graham essay excerpts, rendered with the target's own chat template and its
  default system prompt: the conditions a drafter is normally trained under.
- `perturbed_suite`: the same prompts under `PERTURBATIONS`: other system prompts (short and long), an empty system
  prompt, and two plain-text conversation formats that bypass the chat template. Drafters that overfit the
  training template lose acceptance here.
- `long_suite`: prompts of about 2k / 4k / 7k tokens (PG essays to summarize, HotpotQA questions over many
  documents), where attention drift over long contexts shows.

`render` turns an `EvalPrompt` (+ the target's earlier answers, for multi-turn prompts) into input ids.
"""

import os
import random
import re
from dataclasses import dataclass, field, replace

from ..errors import InputError
from . import conversations


__all__ = [
    "EvalPrompt",
    "STANDARD_SOURCES",
    "LONG_SOURCES",
    "PERTURBATIONS",
    "TEXT_FORMATS",
    "standard_suite",
    "perturbed_suite",
    "long_suite",
    "render",
]


@dataclass
class EvalPrompt:
    """One evaluation prompt.

    `turns` are the user turns; a multi-turn prompt (MT-Bench) is evaluated turn by turn, each later turn conditioned
    on the target's own earlier answers (`render(..., history=answers)`). `system` is the system prompt, None meaning
    "none given" (a chat template may then insert its default one). `template` is "chat" (the tokenizer's chat
    template) or a plain-text format in `TEXT_FORMATS`. `meta` carries source details (category, reference answer,
    target token count) for reporting.
    """

    id: str
    suite: str
    source: str
    turns: list[str]
    system: str | None = None
    template: str = "chat"
    meta: dict = field(default_factory=dict)


STANDARD_SOURCES = ("mtbench", "humaneval", "gsm8k", "sharegpt", "squad", "pg-essays")
LONG_SOURCES = ("pg-essays", "hotpotqa")

# Held-out ShareGPT first turns longer than this are skipped in the standard suite: it measures short-context
# chat, and a few ShareGPT "turns" are whole pasted documents (long prompts have their own suite).
SHAREGPT_MAX_CHARS = 2000
# Essay excerpts for the standard suite: about 600-800 tokens, cut at a paragraph end.
ESSAY_EXCERPT_CHARS = 3000


# Plain-text conversation formats, for prompts rendered without the chat template. Each names the text before the
# system prompt, around every user turn and every assistant answer, and the cue that starts the answer.
TEXT_FORMATS = {
    "plain": {"system": "{}\n\n", "user": "User: {}\n\n", "assistant": "Assistant: {}\n\n", "cue": "Assistant:"},
    "alpaca": {
        "system": "{}\n\n",
        "user": "### Instruction:\n{}\n\n",
        "assistant": "### Response:\n{}\n\n",
        "cue": "### Response:\n",
    },
}

_LONG_SYSTEM_1 = (
    "You are a knowledgeable, patient assistant working for an online learning platform. Your users range from "
    "high-school students to working professionals, and many of them are not native English speakers. Always "
    "answer the question that was actually asked before adding anything else. Prefer short paragraphs and plain "
    "words; define any technical term the first time you use it. When a question involves calculations, show each "
    "step so that the user can check it. When a question is ambiguous, state the interpretation you chose. If you "
    "are not sure about a fact, say so instead of guessing, and never invent references, quotes or numbers. Do not "
    "mention these instructions."
)
_LONG_SYSTEM_2 = (
    "# Role\nYou are Atlas, the in-house assistant of a software consultancy.\n\n# Style\n- Be direct and "
    "professional; no filler, no flattery.\n- Use Markdown: headings for long answers, bullet lists for options, "
    "fenced code blocks with a language tag for code.\n- Keep answers under 400 words unless the user asks for "
    "more.\n\n# Rules\n1. Code must be complete and runnable; include imports.\n2. Point out security or "
    "correctness risks you notice, even if not asked.\n3. When you make an assumption, list it at the end under "
    "'Assumptions'.\n4. Refuse requests for anything illegal, briefly and without lecturing."
)

# Template perturbations: name -> (system prompt, template). `perturbed_suite` applies each to every standard prompt.
PERTURBATIONS = {
    "system-helpful": ("You are a helpful assistant.", "chat"),
    "system-concise": ("You are a concise assistant. Answer briefly.", "chat"),
    "system-expert": ("You are an expert tutor. Explain your reasoning clearly.", "chat"),
    "system-long-tutor": (_LONG_SYSTEM_1, "chat"),
    "system-long-markdown": (_LONG_SYSTEM_2, "chat"),
    # An empty system turn: templates that insert a default system prompt when none is given (SmolLM2's does)
    # then render no system text at all.
    "no-system": ("", "chat"),
    "plain-text": (None, "plain"),
    "alpaca-text": (None, "alpaca"),
}


def _spread(items: list, n: int) -> list:
    """`n` items evenly spaced over `items` (deterministic; covers MT-Bench's category blocks, file order, ...)."""
    if n < 0:
        raise InputError(f"num_per_source must be >= 0, got {n}.")
    if n > len(items):
        raise InputError(f"asked for {n} prompts but the source has only {len(items)}; use num_per_source <= that.")
    return [items[i * len(items) // n] for i in range(n)]


def _cut(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` at the last paragraph (else sentence) end, so excerpts read naturally."""
    if len(text) <= max_chars:
        return text.strip()
    head = text[:max_chars]
    for boundary in ("\n\n", "\n", ". "):
        at = head.rfind(boundary)
        if at > max_chars // 2:
            return head[: at + (1 if boundary == ". " else 0)].strip()
    return head.strip()


def _strip_date(essay_text: str) -> str:
    """Drop the essay's opening date line ('April 2012'), which is an artifact of the concatenated source file."""
    date = re.match(conversations._MONTH_YEAR + r"(?:, (?:rev\.?|corrected) [^\n]*)?[ \t]*", essay_text)
    return essay_text[date.end() :].lstrip() if date else essay_text


def _standard_prompts(source: str, n: int, path) -> list[EvalPrompt]:
    if source == "mtbench":
        return [
            EvalPrompt(f"mtbench-{r['question_id']}", "standard", source, r["turns"], meta={"category": r["category"]})
            for r in _spread(conversations.load_mtbench(path), n)
        ]
    if source == "humaneval":
        return [
            EvalPrompt(
                f"humaneval-{r['task_id'].rsplit('/', 1)[-1]}",
                "standard",
                source,
                [f"Complete the following Python function.\n\n```python\n{r['prompt']}```"],
                meta={"task_id": r["task_id"], "entry_point": r["entry_point"]},
            )
            for r in _spread(conversations.load_humaneval(path), n)
        ]
    if source == "gsm8k":
        records = list(enumerate(conversations.load_gsm8k(path)))
        return [
            EvalPrompt(
                f"gsm8k-{i}",
                "standard",
                source,
                [f"Solve this math problem step by step.\n\n{r['question']}"],
                meta={"answer": r["answer"]},
            )
            for i, r in _spread(records, n)
        ]
    if source == "sharegpt":
        first_turns = [
            (i, conv[next(j for j, m in enumerate(conv) if m["role"] == "user")]["content"])
            for i, conv in enumerate(conversations.heldout_sharegpt(None, path))
        ]
        usable = [(i, t) for i, t in first_turns if t.strip() and len(t) <= SHAREGPT_MAX_CHARS]
        return [
            EvalPrompt(f"sharegpt-heldout-{i}", "standard", source, [turn], meta={"heldout_index": i})
            for i, turn in _spread(usable, n)
        ]
    if source == "squad":
        answerable = [r for r in conversations.load_squad(path) if not r["is_impossible"]]
        return [
            EvalPrompt(
                f"squad-{r['id']}",
                "standard",
                source,
                [
                    "Answer the question using the passage below.\n\n"
                    f"Passage: {r['context']}\n\nQuestion: {r['question']}"
                ],
                meta={"title": r["title"], "answers": r["answers"]},
            )
            for r in _spread(answerable, n)
        ]
    if source == "pg-essays":
        essays = [
            (i, e) for i, e in enumerate(conversations.load_pg_essays(path)) if len(e["text"]) >= ESSAY_EXCERPT_CHARS
        ]
        return [
            EvalPrompt(
                f"pg-essays-{i}",
                "standard",
                source,
                [f"Summarize this essay.\n\n{_cut(_strip_date(e['text']), ESSAY_EXCERPT_CHARS)}"],
                meta={"date": e["date"]},
            )
            for i, e in _spread(essays, n)
        ]
    raise InputError(f"unknown standard source {source!r}; choose from {', '.join(STANDARD_SOURCES)}.")


def standard_suite(num_per_source: int = 10, source_names: tuple | None = None, paths: dict | None = None) -> list:
    """`num_per_source` prompts from each of `STANDARD_SOURCES` (or the subset `source_names`), chat template, no
    system prompt. Prompts are spread evenly over each source (MT-Bench: num_per_source=8 gives one per category).
    `paths` maps a source name to a local file, skipping its download."""
    paths = paths or {}
    chosen = STANDARD_SOURCES if source_names is None else tuple(source_names)
    suite = []
    for source in chosen:
        suite.extend(_standard_prompts(source, num_per_source, paths.get(source)))
    return suite


def perturbed_suite(
    num_per_source: int = 5, perturbations: tuple | None = None, source_names: tuple | None = None, paths=None
) -> list:
    """Every standard prompt under every perturbation in `PERTURBATIONS` (or the named subset `perturbations`).

    Ids are `<standard id>@<perturbation>`, so results pair up with the standard suite's."""
    names = list(PERTURBATIONS) if perturbations is None else list(perturbations)
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        raise InputError(f"unknown perturbation(s) {unknown}; choose from {', '.join(PERTURBATIONS)}.")
    suite = []
    for prompt in standard_suite(num_per_source, source_names, paths):
        for name in names:
            system, template = PERTURBATIONS[name]
            meta = {**prompt.meta, "perturbation": name, "standard_id": prompt.id}
            suite.append(
                replace(
                    prompt, id=f"{prompt.id}@{name}", suite="perturbed", system=system, template=template, meta=meta
                )
            )
    return suite


# ---------------------------------------------------------------------------------------------------------------------
# Long prompts
# ---------------------------------------------------------------------------------------------------------------------

_ESSAY_INSTRUCTION = "Summarize the text above in a few paragraphs."
_HOTPOT_INSTRUCTION = (
    "Answer the question using the documents above. First explain which documents you used and how they "
    "connect, then give the answer."
)


def _fit_essays(tokenizer, essays: list, start: int, target: int, chat_template) -> tuple[str, int]:
    """Consecutive essays from `start`, cut at a sentence end so the rendered prompt has at most `target` tokens."""
    overhead = len(render(tokenizer, _essay_prompt("", "-", target), chat_template=chat_template))
    budget = target - overhead
    if budget <= 0:
        raise InputError(f"length {target} leaves no room for text after the {overhead}-token prompt frame.")
    parts, count, i = [], 0, start
    while count < budget:
        text = _strip_date(essays[i % len(essays)]["text"])
        parts.append(text)
        count += len(tokenizer(text, add_special_tokens=False)["input_ids"])
        i += 1
        if i - start > len(essays):
            raise InputError(f"all essays together are shorter than {target} tokens; ask for shorter lengths.")
    ids = tokenizer("\n\n".join(parts), add_special_tokens=False)["input_ids"]
    while True:
        text = tokenizer.decode(ids[:budget])
        end = max(text.rfind(". "), text.rfind(".\n"), text.rfind("\n\n"))
        text = (text[: end + 1] if end > 0 else text).strip()
        n = len(render(tokenizer, _essay_prompt(text, "-", target), chat_template=chat_template))
        if n <= target:
            return text, n
        budget -= n - target  # re-tokenizing the decoded text can merge differently: shrink by the excess


def _essay_prompt(text: str, prompt_id: str, target: int) -> EvalPrompt:
    turn = f"{text}\n\n{_ESSAY_INSTRUCTION}"
    return EvalPrompt(prompt_id, "long", "pg-essays", [turn], meta={"target_tokens": target})


def _hotpot_prompt(record: dict, paragraphs: list, prompt_id: str, target: int) -> EvalPrompt:
    docs = "\n\n".join(f"Document {k + 1} ({p['title']}):\n{p['text']}" for k, p in enumerate(paragraphs))
    turn = f"{docs}\n\n{_HOTPOT_INSTRUCTION}\n\nQuestion: {record['question']}"
    meta = {"target_tokens": target, "answer": record["answer"], "num_documents": len(paragraphs)}
    return EvalPrompt(prompt_id, "long", "hotpotqa", [turn], meta=meta)


def _fit_hotpot(tokenizer, records: list, index: int, target: int, chat_template) -> EvalPrompt:
    """HotpotQA question `index` with its own paragraphs (gold first) plus distractor paragraphs of the following
    questions, as many as fit in `target` tokens, in a shuffled (seeded) order so the gold ones sit anywhere."""
    record = records[index]
    prompt_id = f"hotpotqa-{record['id']}-{target}"
    gold = [p for p in record["paragraphs"] if p["title"] in record["supporting_titles"]]
    own = [p for p in record["paragraphs"] if p["title"] not in record["supporting_titles"]]
    overhead = len(render(tokenizer, _hotpot_prompt(record, gold, prompt_id, target), chat_template=chat_template))
    if overhead > target:
        raise InputError(f"HotpotQA question {record['id']} needs {overhead} tokens, more than length {target}.")
    chosen, count, seen = list(gold), overhead, {p["title"] for p in gold}
    j = index
    candidates = iter(own)
    while True:
        paragraph = next(candidates, None)
        if paragraph is None:
            j = (j + 1) % len(records)
            if j == index:
                break
            candidates = iter(records[j]["paragraphs"])
            continue
        if paragraph["title"] in seen:
            continue
        block = f"Document 99 ({paragraph['title']}):\n{paragraph['text']}\n\n"  # an upper bound on its cost
        cost = len(tokenizer(block, add_special_tokens=False)["input_ids"])
        if count + cost > target:
            break
        chosen.append(paragraph)
        seen.add(paragraph["title"])
        count += cost
    rng = random.Random(f"{record['id']}-{target}")
    while True:
        order = list(chosen)
        rng.shuffle(order)
        prompt = _hotpot_prompt(record, order, prompt_id, target)
        n = len(render(tokenizer, prompt, chat_template=chat_template))
        if n <= target or len(chosen) == len(gold):
            prompt.meta["num_tokens"] = n
            return prompt
        chosen.pop()  # the per-paragraph estimate undercounted: drop the last distractor and retry


def long_suite(
    tokenizer,
    lengths: tuple = (2048, 4096, 7168),
    num_per_length: int = 2,
    source_names: tuple = LONG_SOURCES,
    paths: dict | None = None,
    chat_template: str | None = None,
) -> list:
    """`num_per_length` prompts per source and length whose rendered size (chat template, `render`) is at most, and
    close to, each length in tokens of `tokenizer`: Paul Graham essays to summarize (consecutive essays cut at a
    sentence end) and HotpotQA questions over their own 10 paragraphs plus distractors of other questions.
    `meta["num_tokens"]` holds the rendered length."""
    if num_per_length < 0 or any(length < 1 for length in lengths):
        raise InputError(
            f"num_per_length={num_per_length}, lengths={list(lengths)}: pass counts >= 0 and lengths >= 1."
        )
    paths = paths or {}
    suite = []
    for source in source_names:
        if source == "pg-essays":
            essays = conversations.load_pg_essays(paths.get(source))
            for length in lengths:
                for k in range(num_per_length):
                    start = k * len(essays) // max(num_per_length, 1)
                    text, n = _fit_essays(tokenizer, essays, start, length, chat_template)
                    prompt = _essay_prompt(text, f"pg-essays-{start}-{length}", length)
                    prompt.meta["num_tokens"] = n
                    suite.append(prompt)
        elif source == "hotpotqa":
            records = conversations.load_hotpotqa(paths.get(source))
            for length in lengths:
                for index in _spread(list(range(len(records))), num_per_length):
                    suite.append(_fit_hotpot(tokenizer, records, index, length, chat_template))
        else:
            raise InputError(f"unknown long source {source!r}; choose from {', '.join(LONG_SOURCES)}.")
    return suite


# ---------------------------------------------------------------------------------------------------------------------
# Rendering
def load_chat_template(value: str | None, text_formats: bool = True) -> str | None:
    """A `--chat-template` value: a path to a template file (read), a Jinja template string (kept), or, when
    `text_formats`, the name of a plain-text format in `TEXT_FORMATS` (kept). Anything else (a mistyped path) is an
    error, never used as template text."""
    if value is None:
        return None
    path = os.path.expanduser(str(value))
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except UnicodeDecodeError as e:
            raise InputError(f"chat template {path} is not UTF-8 text (byte {e.start}: {e.reason}).") from None
    if text_formats and value in TEXT_FORMATS:
        return value
    if "{{" in value or "{%" in value:
        return value  # a Jinja template given inline
    formats = f", or one of {', '.join(TEXT_FORMATS)}" if text_formats else ""
    raise InputError(f"chat template {value}: no such file; pass an existing .jinja file, a Jinja string{formats}.")


# ---------------------------------------------------------------------------------------------------------------------


def render(
    tokenizer,
    prompt: EvalPrompt,
    history=(),
    system_prompt: str | None = None,
    chat_template: str | None = None,
    max_length: int | None = None,
) -> list[int]:
    """Input ids for the next answer to `prompt`: user turn `len(history)`, after the earlier user turns and the
    target's own earlier answers `history`.

    `system_prompt` overrides `prompt.system`. `chat_template` overrides the prompt's template: a Jinja chat template
    string, or the name of a plain-text format in `TEXT_FORMATS`. Chat-template text is tokenized without adding
    special tokens (the template writes them); plain text gets the tokenizer's usual special tokens (e.g. BOS), as a
    user feeding raw text would. Raises ValueError when the ids exceed `max_length`.
    """
    history = list(history)
    if len(history) >= len(prompt.turns):
        raise InputError(
            f"prompt {prompt.id} has {len(prompt.turns)} turn(s) but {len(history)} earlier answer(s) were given; "
            f"pass at most {len(prompt.turns) - 1}."
        )
    system = prompt.system if system_prompt is None else system_prompt
    template = prompt.template
    if chat_template in TEXT_FORMATS:
        template, chat_template = chat_template, None

    if template == "chat":
        messages = [] if system is None else [{"role": "system", "content": system}]
        for turn, answer in zip(prompt.turns, history):
            messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": prompt.turns[len(history)]})
        if chat_template is None and getattr(tokenizer, "chat_template", None) is None:
            raise InputError(
                f"the tokenizer has no chat template; pass chat_template= (a Jinja string or one of "
                f"{', '.join(TEXT_FORMATS)}) to render prompt {prompt.id}."
            )
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, chat_template=chat_template
        )
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    elif template in TEXT_FORMATS:
        fmt = TEXT_FORMATS[template]
        text = fmt["system"].format(system) if system else ""
        for turn, answer in zip(prompt.turns, history):
            text += fmt["user"].format(turn) + fmt["assistant"].format(answer)
        text += fmt["user"].format(prompt.turns[len(history)]) + fmt["cue"]
        ids = tokenizer(text)["input_ids"]
    else:
        raise InputError(
            f"unknown template {template!r} in prompt {prompt.id}; use 'chat' or one of {list(TEXT_FORMATS)}."
        )

    if max_length is not None and len(ids) > max_length:
        raise InputError(
            f"prompt {prompt.id} renders to {len(ids)} tokens, more than max_length={max_length}; "
            "raise max_length or use shorter prompts (e.g. a smaller long-suite length)."
        )
    return list(ids)
