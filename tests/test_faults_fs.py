"""Faults on real file systems (issue 27): a full disk and a read-only folder, made with a small tmpfs (and a
read-only remount of it), for `convert`, `prepare-data` and `train`'s final save. Each run must fail in one line
naming the path and the cause, leave the previous complete output byte-identical, and leave nothing half-written.
Mounting needs CAP_SYS_ADMIN (root on a normal machine); without it the tests skip with the reason. Slow tier: the
mounts are real and `train` runs."""

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hf_eagle31.cli import main
from hf_eagle31.convert import convert_checkpoint
from hf_eagle31.data.prepare import prepare_dataset

from conftest import save_tiny_setup, tiny_chat_tokenizer


pytestmark = pytest.mark.slow
CONV = [[{"role": "user", "content": "w1"}, {"role": "assistant", "content": "w2 w3"}]]


def _run(*argv):
    return subprocess.run(list(map(str, argv)), capture_output=True, text=True)


@pytest.fixture
def mount(tmp_path):
    """`mount(name, size)`: a fresh tmpfs of `size` at tmp_path/name (unmounted afterwards); skips without rights."""
    mounted = []

    def make(name, size="2m"):
        if shutil.which("mount") is None:
            pytest.skip("no `mount` command on this machine: the real-file-system fault tests need it")
        folder = tmp_path / name
        folder.mkdir()
        result = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in reversed(mounted):
        _run("umount", "-l", folder)


def read_only(folder):
    result = _run("mount", "-o", "remount,ro", folder)
    assert result.returncode == 0, result.stderr


def fill(folder):
    """Fills the file system of `folder` to the last byte (a `filler` file)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (hidden ones included) with its bytes, except the filler."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "filler"]
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def error_line(capsys, verb):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(f"hf-eagle31 {verb}: error: "), err
    return err[-1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs")
    _, _, target_dir, drafters, _ = save_tiny_setup(root)
    with open(root / "c.jsonl", "w") as f:
        for i in range(8):
            words = " ".join(f"w{(i + j) % 30}" for j in range(5))
            f.write(f'{{"messages": [{{"role": "user", "content": "{words}"}}, ')
            f.write('{"role": "assistant", "content": "w1 w2 w3 w4 w5"}]}\n')
    assert main(["prepare-data", "--target", str(target_dir), "--source", str(root / "c.jsonl"), "--no-regenerate",
                 "--out", str(root / "data")]) == 0  # fmt: skip
    return root, target_dir, drafters[0]


# ------------------------------------------------------------------------------------------------ convert


def test_convert_into_a_full_disk(setup, mount, capsys):
    root, _, drafter = setup
    disk = mount("disk")
    assert main(["convert", str(drafter), str(disk / "out"), "--to", "vllm"]) == 0
    before = snapshot(disk)
    fill(disk)
    assert main(["convert", str(drafter), str(disk / "out"), "--to", "speculators", "--overwrite"]) == 2
    line = error_line(capsys, "convert")
    assert "no space left on the device" in line and str(disk / "out") in line, line
    assert snapshot(disk) == before  # the previous export, whole; no .out.partial, no .out.old
    # the library call under it, the same
    with pytest.raises(OSError, match=f"cannot write {disk / 'out'}.*no space left"):
        convert_checkpoint(drafter, disk / "out", "speculators", overwrite=True)
    assert snapshot(disk) == before


def test_convert_into_a_read_only_folder(setup, mount, capsys):
    root, _, drafter = setup
    disk = mount("ro")
    assert main(["convert", str(drafter), str(disk / "out"), "--to", "vllm"]) == 0
    before = snapshot(disk)
    read_only(disk)
    for dst in (disk / "out", disk / "new"):
        assert main(["convert", str(drafter), str(dst), "--to", "speculators", "--overwrite"]) == 2
        line = error_line(capsys, "convert")
        assert str(dst) in line and "read-only file system" in line, line
    # the library call (no pre-flight check): refused when it takes the lock, before any compute
    with pytest.raises(OSError, match=f"cannot write {disk}/.out.lock: read-only file system"):
        convert_checkpoint(drafter, disk / "out", "speculators", overwrite=True)
    assert snapshot(disk) == before


# ------------------------------------------------------------------------------------------------ prepare-data


def test_prepare_data_into_a_full_disk(setup, mount, capsys):
    root, target_dir, _ = setup
    disk = mount("disk")
    argv = ["prepare-data", "--target", str(target_dir), "--source", str(root / "c.jsonl"), "--no-regenerate"]
    assert main([*argv, "--out", str(disk / "data")]) == 0
    before = snapshot(disk)
    fill(disk)
    assert main([*argv, "--out", str(disk / "data"), "--overwrite", "--max-length", "32"]) == 2
    line = error_line(capsys, "prepare-data")
    assert "no space left on the device" in line and str(disk / "data") in line, line
    assert snapshot(disk) == before
    with pytest.raises(OSError, match="no space left"):
        prepare_dataset(tiny_chat_tokenizer(), CONV, out_dir=str(disk / "data"), overwrite=True, show_progress=False)
    assert snapshot(disk) == before


def test_prepare_data_into_a_read_only_folder(setup, mount, capsys):
    root, target_dir, _ = setup
    disk = mount("ro")
    argv = ["prepare-data", "--target", str(target_dir), "--source", str(root / "c.jsonl"), "--no-regenerate"]
    assert main([*argv, "--out", str(disk / "data")]) == 0
    before = snapshot(disk)
    read_only(disk)
    assert main([*argv, "--out", str(disk / "data"), "--overwrite"]) == 2
    line = error_line(capsys, "prepare-data")
    assert str(disk / "data") in line and "read-only file system" in line, line
    with pytest.raises(OSError, match=f"cannot write {disk}/.data.lock: read-only file system"):
        prepare_dataset(tiny_chat_tokenizer(), CONV, out_dir=str(disk / "data"), overwrite=True, show_progress=False)
    assert snapshot(disk) == before


# ------------------------------------------------------------------------------------------------ train


def _train(root, target_dir, out, *extra):
    return main([
        "train", "--data", str(root / "data"), "--target", str(target_dir), "--out", str(out), "--ttt-steps", "1",
        "--draft-vocab-size", "32", "--per_device_train_batch_size", "4", "--use_cpu", "--disable_tqdm", "true",
        "--report_to", "none", "--max_steps", "1", "--save_strategy", "no", *extra,
    ])  # fmt: skip


def test_train_final_save_into_a_full_disk(setup, mount, capsys):
    """The disk fills before the final save: one line, no drafter, no `.final.partial` half left in --out."""
    root, target_dir, _ = setup
    disk = mount("disk", size="4m")
    (disk / "out").mkdir()
    fill(disk)
    os.truncate(disk / "filler", os.path.getsize(disk / "filler") - 16384)  # room for the lock and logs, not weights
    assert _train(root, target_dir, disk / "out") == 2
    line = error_line(capsys, "train")
    assert "no space left on the device" in line and str(disk / "out") in line, line
    assert sorted(os.listdir(disk / "out")) == [], os.listdir(disk / "out")


def test_train_into_a_read_only_folder(setup, mount, capsys):
    root, target_dir, _ = setup
    disk = mount("ro")
    assert _train(root, target_dir, disk / "out") == 0  # a finished run
    before = snapshot(disk)
    read_only(disk)
    assert _train(root, target_dir, disk / "out", "--resume_from_checkpoint", "latest") == 2
    line = error_line(capsys, "train")
    assert str(disk / "out") in line and "read-only file system" in line, line
    assert snapshot(disk) == before
