# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
Safe outputs: what every verb that writes a folder (`prepare-data`, `train`, `convert`, offline features, the target
cache) uses so that no run destroys data, passes off half a result as a whole one, or fights another run.

- `atomic_directory(dst, ...)`: the output is written into a temporary sibling (`.NAME.partial`) and renamed into
  place only when complete; `overwrite` replaces only a folder of ours (`is_ours`) and never one that equals or
  contains a source.
- `output_lock(path)`: one writer per output, an advisory `fcntl.flock` lock on `.NAME.lock` beside it; a second run
  gets one line naming the holder's pid; the kernel drops a dead holder's lock, so a stale lock file is taken over.
- `write_errors_name(path)`: write failures (no space, permission, read-only, folder gone; safetensors' own
  serialisation errors too) become one-line `OSError`s that say what happened and name the path.

Imports nothing else of the package but `errors`.
"""

import contextlib
import errno
import fcntl
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..errors import InputError


__all__ = [
    "atomic_directory",
    "output_lock",
    "write_errors_name",
    "read_errors_name",
    "partial_path",
    "is_inside",
    "DRAFTER_FILES",
    "is_drafter_dir",
    "is_dataset_dir",
]

# What each write errno means for the user: the fix goes with it.
_WRITE_ERRORS = {
    errno.ENOSPC: "no space left on the device: free some space or choose another output folder",
    errno.EDQUOT: "disk quota exceeded: free some space or choose another output folder",
    errno.EACCES: "permission denied: choose a writable output folder",
    errno.EPERM: "permission denied: choose a writable output folder",
    errno.EROFS: "read-only file system: choose a writable output folder",
    errno.ENOENT: "the folder was removed while writing: run again",
}
# safetensors reports write failures as `SafetensorError: Error while serializing: I/O error: <strerror> (os error N)`
_OS_ERROR_CODE = re.compile(r"os error (\d+)")


def partial_path(dst: str | os.PathLike) -> Path:
    """The temporary sibling `atomic_directory` writes `dst` into."""
    dst = Path(os.path.abspath(dst))
    return dst.with_name(f".{dst.name}.partial")


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` is `folder` or lies inside it (symlinks resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


# --------------------------------------------------------------------------------------------- what is ours

DRAFTER_FILES = re.compile(
    r"config\.json|generation_config\.json|README\.md|.*\.safetensors|model\.safetensors\.index\.json|"
    r"pytorch_model.*\.bin|adapter_config\.json|[a-z_0-9]+\.py|training_args\.bin|hf_eagle31_.*\.json|\.gitattributes"
)
_DATASET_FILES = re.compile(r"dataset_info\.json|state\.json|data-\d+-of-\d+\.arrow|prepare_report\.json|regenerated")


def _only(folder: Path, allowed: re.Pattern, markers: tuple[str, ...]) -> bool:
    names = os.listdir(folder)
    return all(allowed.fullmatch(n) for n in names) and all(m in names for m in markers)


def is_drafter_dir(folder: str | os.PathLike) -> bool:
    """A drafter folder of ours (any format `convert` writes): config.json, weights, modeling files, card; nothing
    else (no checkpoints, no user files)."""
    return _only(Path(folder), DRAFTER_FILES, ("config.json",))


def is_dataset_dir(folder: str | os.PathLike) -> bool:
    """A dataset `prepare-data` wrote (datasets' `save_to_disk` files, the report, the regeneration shards)."""
    return _only(Path(folder), _DATASET_FILES, ("dataset_info.json", "state.json"))


def _unknown(folder: Path, limit: int = 3) -> str:
    names = sorted(os.listdir(folder))
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


# --------------------------------------------------------------------------------------------- write errors


def describe_write_error(error: BaseException, path: str | os.PathLike) -> str | None:
    """One line for a write failure under `path`, or None when `error` is not one."""
    code = None
    if isinstance(error, OSError):
        code = error.errno
    elif type(error).__name__ == "SafetensorError":
        match = _OS_ERROR_CODE.search(str(error))
        code = int(match.group(1)) if match else None
    if code not in _WRITE_ERRORS:
        return None
    # The file that failed: a copy's destination (shutil reports the source as `filename`, the destination as
    # `filename2`), named after the output when it is not the output itself.
    failed = getattr(error, "filename2", None) or getattr(error, "filename", None)
    where = str(path) if failed is None or str(failed) == str(path) else f"{path} ({failed})"
    return f"cannot write {where}: {_WRITE_ERRORS[code]}"


@contextlib.contextmanager
def write_errors_name(path: str | os.PathLike) -> Iterator[None]:
    """Re-raises write failures inside the block as one-line `OSError`s that say what happened and name the path
    (the CLI prints an `OSError` in one line); other errors pass unchanged."""
    try:
        yield
    except BaseException as error:
        # An inner block's line (e.g. the temporary `.NAME.partial`) is said again for the outer path: the output
        # the user chose.
        original = getattr(error, "write_error", error)
        text = describe_write_error(original, path)
        if text is None:
            raise
        one_line = OSError(text)  # not OSError(code, text): its str() would start with "[Errno 28]"
        one_line.errno = original.errno if isinstance(original, OSError) else None
        one_line.write_error = original
        raise one_line from original


@contextlib.contextmanager
def read_errors_name(path: str | os.PathLike, what: str, repair: str) -> Iterator[None]:
    """
    Re-raises a read failure inside the block as a one-line `InputError` that names what cannot be read and where
    (`what` in `path`), the cause, and the command or step that `repair`s it: a truncated or corrupt weights file
    (safetensors' "Error while deserializing"), an unreadable Arrow file, any `OSError` of a local read. Wrap reads
    of local files only (a Hub id's "not found" is not a broken file). Never reports a read as a write.
    """
    try:
        yield
    except InputError:
        raise
    except BaseException as error:
        name = type(error).__name__
        if not (
            (name == "SafetensorError" and "deserializ" in str(error).lower())
            or name.startswith("Arrow")
            or isinstance(error, (OSError, EOFError))
        ):
            raise
        cause = " ".join(str(error).split()) or name
        raise InputError(f"{what} in {path} cannot be read ({cause}): {repair}.") from error


# --------------------------------------------------------------------------------------------- one writer


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, wait: bool = False) -> Iterator[Path]:
    """
    Holds an advisory lock on output `path` while the block runs: `.NAME.lock` beside it (created; kept afterwards,
    removing it would let two runs hold two different files). A second run is refused in one line naming the
    holder's pid, or with `wait=True` waits for it (the target cache: the second run then reads the first's copy).
    The kernel releases the lock of a process that died, so a stale lock file is simply taken over.
    """
    target = Path(os.path.abspath(path))
    lock = target.with_name(f".{target.name}.lock")
    with write_errors_name(lock):
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise InputError(
                f"{path} is being written by another run (pid {holder}): wait for it to finish, or choose another "
                "output folder."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------------------------- atomic outputs


def check_destination(
    dst: str | os.PathLike,
    overwrite: bool = False,
    sources: Iterable[str | os.PathLike | None] = (),
    is_ours: Callable[[Path], bool] | None = None,
    what: str = "output",
) -> None:
    """
    Refuses, before any compute, a destination a run must not write: one that equals or contains a source (`--overwrite`
    would delete it), an existing non-empty one without `overwrite`, and with `overwrite` one that is not `is_ours`.
    """
    dst = Path(dst)
    for source in sources:
        if isinstance(source, (str, os.PathLike)) and os.path.exists(source) and is_inside(source, dst):
            raise InputError(
                f"{dst} is or contains the source {source}: choose an output folder outside it (writing it would "
                "replace the source)."
            )
    if dst.exists() and not dst.is_dir():
        raise InputError(f"{dst} is a file, not a folder: choose another output folder.")
    if not dst.is_dir() or not os.listdir(dst):
        return
    if not overwrite:
        raise InputError(f"{dst} exists and is not empty: choose a new output folder or pass --overwrite.")
    if is_ours is not None and not is_ours(dst):
        raise InputError(
            f"{dst} is not a {what} written by hf-eagle31 (it holds {_unknown(dst)}): --overwrite only replaces "
            "our own outputs; choose another output folder or empty it yourself."
        )


@contextlib.contextmanager
def atomic_directory(
    dst: str | os.PathLike,
    overwrite: bool = False,
    sources: Iterable[str | os.PathLike | None] = (),
    is_ours: Callable[[Path], bool] | None = None,
    what: str = "output",
    resumable: bool = False,
) -> Iterator[Path]:
    """
    Yields the temporary sibling `.NAME.partial` to write the output into; when the block completes, it replaces
    `dst` (an earlier `dst` is moved aside first and removed only after the rename). A failure inside the block
    leaves `dst` as it was: the previous complete result, or nothing. `resumable`: keep the partial folder after a
    failure and reuse it on the next run (prepare-data's regeneration shards); otherwise it starts empty. Checks the
    destination first (`check_destination`); hold `output_lock(dst)` around it when other runs may write `dst`.
    """
    check_destination(dst, overwrite, sources, is_ours, what)
    dst = Path(os.path.abspath(dst))
    partial = partial_path(dst)
    with write_errors_name(dst):
        if partial.exists() and not resumable:
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
    ok = False
    try:
        with write_errors_name(dst):
            yield partial
            old = dst.with_name(f".{dst.name}.old")
            if old.exists():
                shutil.rmtree(old)
            if dst.exists():
                dst.rename(old)
            partial.rename(dst)
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)
        ok = True
    finally:
        if not ok and not resumable:
            shutil.rmtree(partial, ignore_errors=True)
