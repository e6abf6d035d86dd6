# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""
The package's error contract.

`InputError`: the input is wrong (an argument, a file, a checkpoint, a config), and the message says in one line
what to pass instead. `hf-eagle31` prints it as `hf-eagle31 <verb>: error: <message>` and exits 2. It subclasses
`ValueError`, so library callers that catch `ValueError` keep working.

Everything else is a bug or an environment failure and keeps its traceback, a plain `ValueError` included, with
these exceptions that are about the input too: `OSError` (a missing or unwritable file, transformers' "can't load"
errors), `ModuleNotFoundError` (an optional dependency: matplotlib, peft), safetensors' error for a truncated
weights file and Jinja's for a bad chat template. `MachineBusyError` (a `--strict` measurement on a busy machine)
exits 3.
"""

import contextlib
import re


class InputError(ValueError):
    """Bad user input; the message is one line that names the fix."""


class MachineBusyError(RuntimeError):
    """A `--strict` measurement refused: the machine was busy at the start or the calibration drifted."""


@contextlib.contextmanager
def modeling_checks_are_input_errors():
    """Re-raises the `ValueError`s of the modeling code's config and checkpoint checks as `InputError` (`modeling/`
    travels with every checkpoint and cannot import this package). Wraps only the calls that hand user-supplied
    configs and checkpoints to `modeling/`; usable as a decorator."""
    try:
        yield
    except InputError:
        raise
    except ValueError as error:
        raise InputError(str(error)) from error


EXIT_USAGE = 2  # argparse's code for bad arguments; bad input found later gets the same
EXIT_BUSY = 3  # exit code of `bench` / `eval --strict` on a busy machine


def is_input_error(error: BaseException) -> bool:
    """Whether `error` is about the input (one line, exit 2 or 3) rather than a bug (traceback); see the module doc.
    safetensors' and Jinja's errors are matched by name: no import of either."""
    return (
        isinstance(error, (InputError, OSError, ModuleNotFoundError, MachineBusyError))
        or type(error).__name__ == "SafetensorError"
        or type(error).__module__.startswith("jinja2")
    )


def exit_code_for(error: BaseException) -> int:
    return EXIT_BUSY if isinstance(error, MachineBusyError) else EXIT_USAGE


def one_line(error: BaseException) -> str:
    """The error's message on one line (transformers' multi-line messages included)."""
    text = " ".join(str(error).split())
    # safetensors says "Error while serializing" for a failed write, "Error while deserializing" for a bad file
    if type(error).__name__ == "SafetensorError" and re.search(r"\bserializ", text, re.IGNORECASE):
        text = f"cannot write .safetensors weights (disk full, permission, or the folder was removed): {text}"
    elif type(error).__name__ == "SafetensorError":
        text = f"unreadable .safetensors weights (a truncated or corrupt file: copy or save it again): {text}"
    elif type(error).__module__.startswith("jinja2"):
        line = getattr(error, "lineno", None)
        text = f"chat template: {text or type(error).__name__}" + (f" (line {line})" if line else "")
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.strerror}: {error.filename}"  # "[Errno 2] No such file or directory: 'x'" -> no errno
    return text or type(error).__name__
