""".ci/canary.py's reading of .ci/known-broken.txt (issue 33): strict, one line naming the line at fault; a recorded
release is found whatever the file's encoding dressing."""

import importlib.util
from pathlib import Path

import pytest


CANARY = Path(__file__).resolve().parents[1] / ".ci" / "canary.py"


@pytest.fixture(scope="module")
def canary():
    spec = importlib.util.spec_from_file_location("canary", CANARY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(tmp_path, text, bom=False):
    path = tmp_path / "known-broken.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def test_the_recorded_file_parses(canary):
    assert isinstance(canary.known_broken(), dict)  # the repository's own file, comments and all


def test_comments_blank_lines_and_a_bom_are_skipped(canary, tmp_path):
    text = "# header\n\n   # an indented comment\n5.99.0: breaks the door (#40)\n  6.0.0 :  renamed a hook  \n"
    for bom in (False, True):  # an editor's BOM must not hide the first recorded release
        assert canary.known_broken(write(tmp_path, text, bom)) == {
            "5.99.0": "breaks the door (#40)",
            "6.0.0": "renamed a hook",
        }
    assert canary.known_broken(write(tmp_path, "\ufeff5.99.0: first line\n")) == {"5.99.0": "first line"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("5.99.0 breaks the door\n", r"known-broken.txt:1: '5.99.0 breaks the door' has no colon"),
        ("# fine\n5.99.0:\n", r"known-broken.txt:2: 5.99.0 has no reason"),
        ("5.99.0:    \n", r"known-broken.txt:1: 5.99.0 has no reason"),
        ("five: a reason\n", r"known-broken.txt:1: 'five' is not a version"),
        ("5.99.0: a\n5.99.0: b\n", r"known-broken.txt:2: 5.99.0 is recorded twice"),
    ],
)
def test_a_malformed_line_is_one_line_naming_it(canary, tmp_path, text, message):
    with pytest.raises(canary.KnownBrokenError, match=message) as error:
        canary.known_broken(write(tmp_path, text))
    assert "\n" not in str(error.value)


def test_main_reports_a_malformed_file_and_finds_a_recorded_release(canary, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(canary, "ROOT", tmp_path)
    (tmp_path / ".ci").mkdir()
    write(tmp_path / ".ci", "5.99: recorded without its patch number\n", bom=True)
    assert canary.main("failed", "5.99.0") == 0  # one release however it is spelt, BOM or not
    assert "recorded as known-broken (recorded without its patch number)" in capsys.readouterr().out
    write(tmp_path / ".ci", "5.99.0 no colon\n")
    assert canary.main("failed", "5.99.0") == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("canary: known-broken.txt:1:") and "\n" not in out
