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


class KnownBrokenError(ValueError):
    """A line of .ci/known-broken.txt that is not `VERSION: reason`; the message names the file and the line."""


def known_broken(path=None):
    """`{version: reason}` from .ci/known-broken.txt: one `VERSION: reason` per line, blank lines and `#` comments
    (indented too) skipped. Strict, so a typo never silently unrecords a release: a line without a colon, an empty
    reason, a version that is not one (PEP 440), or a version recorded twice is a `KnownBrokenError` naming the
    line. Read as UTF-8 with an optional BOM (an editor's BOM would otherwise become part of the first version)."""
    from packaging.version import InvalidVersion, Version

    path = Path(path) if path is not None else ROOT / ".ci" / "known-broken.txt"
    if not path.exists():
        return {}
    entries = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path.name}:{number}"
        version, colon, reason = (part.strip() for part in text.partition(":"))
        if not colon:
            raise KnownBrokenError(f"{where}: {text!r} has no colon: write 'VERSION: reason'.")
        if not reason:
            raise KnownBrokenError(f"{where}: {version} has no reason: write 'VERSION: reason (issue)'.")
        try:
            Version(version)
        except InvalidVersion:
            raise KnownBrokenError(f"{where}: {version!r} is not a version: write e.g. '5.26.0: reason'.") from None
        if version in entries:
            raise KnownBrokenError(f"{where}: {version} is recorded twice: keep one line.")
        entries[version] = reason
    return entries


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
    from packaging.version import Version

    try:
        recorded = known_broken()
    except KnownBrokenError as error:
        print(f"canary: {error}")
        return 2
    # "5.26" and "5.26.0" are one release
    reason = next((why for known, why in recorded.items() if Version(known) == Version(version)), None)
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
