# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Evaluation prompts: a JSON-lines prompt file or a named suite (`data.suites`), rendered with the target's chat
template (or a replacement `--chat-template`)."""

import json
import os
from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from ..data.suites import (
    LONG_SOURCES,
    STANDARD_SOURCES,
    EvalPrompt,
    load_chat_template,
    long_suite,
    perturbed_suite,
    render,
    standard_suite,
)
from ..errors import InputError


def read_prompt_file(path: str, num_prompts: int | None = None) -> list[EvalPrompt]:
    """
    Prompts from a JSON-lines file, one object per line with "prompt" (a string), "turns" (a list of user turns,
    MT-Bench's format) or "messages" (role/content turns; the user turns are asked in order, each later turn
    conditioned on the target's own answers, and a leading "system" message becomes the system prompt).
    Optional keys: "id" (or "question_id"), "system", "suite" (default: the file name), "template" (a chat template).
    """
    if not os.path.isfile(path):
        raise InputError(f"prompt file {path} does not exist: pass a .jsonl file with one {{'prompt': ...}} per line.")
    if num_prompts is not None and num_prompts < 1:
        raise InputError(f"num_prompts={num_prompts}: ask for at least 1 prompt (or None for all).")
    default_suite = os.path.splitext(os.path.basename(path))[0]
    prompts = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"prompt file {path} is not UTF-8 text (byte {e.start}: {e.reason}).") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{number} is not valid JSON ({error.msg}): write one JSON object per line.")
        system = record.get("system")
        if "prompt" in record:
            turns = [record["prompt"]]
        elif "turns" in record:
            turns = record["turns"] if isinstance(record["turns"], list) else None  # a string is not a turn list
        elif "messages" in record:
            messages = record["messages"]
            if messages and messages[0].get("role") == "system":
                system = system or messages[0]["content"]
            turns = [m["content"] for m in messages if m.get("role") == "user"]
        else:
            turns = []
        if not turns or not all(isinstance(t, str) and t for t in turns):
            raise InputError(
                f"{path}:{number} needs a non-empty 'prompt' string, 'turns' list or 'messages' list with user turns."
            )
        prompts.append(
            EvalPrompt(
                id=str(record.get("id", record.get("question_id", number))),
                suite=record.get("suite", default_suite),
                source=path,
                turns=turns,
                system=system,
                template=record.get("template") or "chat",
            )
        )
        if num_prompts is not None and len(prompts) >= num_prompts:
            break
    if not prompts:
        raise InputError(f"{path} holds no prompts: write one JSON object per line.")
    return prompts


def read_chat_template(chat_template: str | None) -> str | None:
    """`--chat-template` value: a path to a .jinja file (read here), a Jinja string, or a `suites.TEXT_FORMATS` name;
    anything else (a mistyped path) raises (`suites.load_chat_template`)."""
    return load_chat_template(chat_template)


def suite_prompts(
    name: str,
    tokenizer: PreTrainedTokenizerBase,
    num_prompts: int | None = None,
    long_lengths: Sequence[int] | None = None,
    chat_template: str | None = None,
    source_names: Sequence[str] | None = None,
) -> list[EvalPrompt]:
    """
    Prompts of a named suite from `hf_eagle31.suites`: `standard`, `perturbed`, `long` or `all` (the three), or
    `heldout` (held-out ShareGPT first turns, `num_prompts` of them, default 60).
    `num_prompts` is per source (standard/perturbed) or per source and length (long); None keeps the suites' defaults.
    `source_names` restricts the suites to those sources (e.g. ["mtbench", "gsm8k"]).
    """
    per_source = {} if num_prompts is None else {"num_per_source": num_prompts}
    if source_names:
        known = set(STANDARD_SOURCES) | set(LONG_SOURCES)
        unknown = [s for s in source_names if s not in known]
        if unknown:
            raise InputError(f"unknown source(s) {unknown}: choose from {', '.join(sorted(known))}.")
        standard = tuple(s for s in source_names if s in STANDARD_SOURCES)
        long = tuple(s for s in source_names if s in LONG_SOURCES)
        if name in ("standard", "perturbed") and not standard:
            raise InputError(f"none of {source_names} is a {name}-suite source: use {', '.join(STANDARD_SOURCES)}.")
        per_source["source_names"] = standard
    if name == "standard":
        return standard_suite(**per_source)
    if name == "perturbed":
        return perturbed_suite(**per_source)
    if name == "long":
        kwargs = {} if num_prompts is None else {"num_per_length": num_prompts}
        if source_names:
            if not long:
                raise InputError(f"none of {source_names} is a long-suite source: use {', '.join(LONG_SOURCES)}.")
            kwargs["source_names"] = long
        if long_lengths:
            kwargs["lengths"] = tuple(long_lengths)
        return long_suite(tokenizer, chat_template=read_chat_template(chat_template), **kwargs)
    if name == "heldout":  # held-out ShareGPT first turns (`teacher_forced.heldout_suite`), default 60
        from .teacher_forced import heldout_suite

        return heldout_suite(num_prompts or 60)
    if name == "all":
        parts = ["standard", "perturbed", "long"]
        if source_names:  # only the suites that have one of the requested sources
            parts = (["standard", "perturbed"] if standard else []) + (["long"] if long else [])
        return [
            p
            for part in parts
            for p in suite_prompts(part, tokenizer, num_prompts, long_lengths, chat_template, source_names)
        ]
    raise InputError(f"unknown suite {name!r}: use standard, perturbed, long or all (or --prompts FILE.jsonl).")


def render_prompt(
    tokenizer: PreTrainedTokenizerBase,
    prompt: EvalPrompt,
    answers: Sequence[str] = (),
    system_prompt: str | None = None,
    chat_template: str | None = None,
) -> list[int]:
    """
    Token ids of turn `len(answers)` of `prompt` (`suites.render`): the previous user turns with the target's
    `answers` (strings) as history, then the next user turn and the generation prompt. `chat_template` is a path to a
    .jinja file, a template string or a `suites.TEXT_FORMATS` name; `system_prompt` overrides the prompt's own.
    """
    return render(
        tokenizer,
        prompt,
        history=tuple(answers),
        system_prompt=system_prompt,
        chat_template=read_chat_template(chat_template),
    )
