"""Helpers of the transformers canary in `.ci/run`.

python .ci/canary.py in-range VERSION   exit 0 when VERSION is inside pyproject.toml's transformers range
python .ci/canary.py failed VERSION     after a failed canary run: one line naming the release and what the drafters'
                                        speculation loop uses that it lacks; exit 0 only when
                                        .ci/known-broken.txt records VERSION (a line "VERSION: reason")
"""

import re
import sys
from pathlib import Path

import tomllib


ROOT = Path(__file__).resolve().parents[1]


def tested_range():
    from packaging.specifiers import SpecifierSet

    for dependency in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        match = re.fullmatch(r"transformers\s*(.*)", dependency)
        if match:
            return SpecifierSet(match.group(1))
    raise SystemExit("pyproject.toml declares no transformers range")


def known_broken():
    path = ROOT / ".ci" / "known-broken.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    entries = (line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {version.strip(): reason.strip() for version, reason in entries}


def what_is_missing():
    """What the installed transformers lacks of what the drafters' speculation loop uses (by name and signature)."""
    try:
        from hf_eagle31.modeling import candidate_generator as ours
    except Exception as error:  # the import itself may be what broke
        return f"importing the drafters' code fails ({type(error).__name__}: {error})"
    gaps = ours.door_gaps()
    if gaps:
        return f"it lacks {', '.join(gaps)}, which the drafters' speculation loop uses"
    return "nothing the speculation loop uses by name is missing: see the failing tests above"


def main(command, version):
    if command == "in-range":
        return 0 if version in tested_range() else 1
    reason = known_broken().get(version)
    if reason is not None:
        print(f"canary: transformers {version} fails and is recorded as known-broken ({reason})")
        return 0
    print(
        f"canary: transformers {version} (newest on PyPI) breaks the drafters: {what_is_missing()}; fix it, or record "
        f"'{version}: <reason>' in .ci/known-broken.txt"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
