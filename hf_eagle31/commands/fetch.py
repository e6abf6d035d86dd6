# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""`hf-eagle31 fetch`: fetch, verify and summarise every pinned source (assets)."""

import argparse
from pathlib import Path

from ..assets import SOURCES, fetch
from ..data.conversations import (
    _is_heldout,
    _iter_json_records,
    _iter_sharegpt_indexed,
    load_gsm8k,
    load_hotpotqa,
    load_humaneval,
    load_mtbench,
    load_pg_essays,
    load_squad,
)
from ..errors import InputError
from .common import add


def check_source_name(value, flag):
    """A pinned source's name (argparse's `choices` refuse an empty `nargs="*"` list: "fetch" alone is all)."""
    if value not in SOURCES:
        raise InputError(f"{flag}: unknown source {value!r}; pass any of {', '.join(SOURCES)} (none: all).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "names",
        nargs="*",
        check=check_source_name,
        flag="NAMES",
        help=f"sources to fetch (default: all): {', '.join(SOURCES)}",
    )


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


def run(args) -> int:
    names = args.names or list(SOURCES)
    for name in names:
        path = fetch(name)
        print(f"{name:28s} sha256 ok  {path}  ({_summary(name, path)})")
    return 0
