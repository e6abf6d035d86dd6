# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Old import paths, kept for one release (0.1 -> 0.2 moved modules into sub-packages; see docs/ARCHITECTURE.md)."""

import importlib
import sys
import warnings


def moved_module(old: str, new: str):
    """Makes module `old` an alias of module `new` (same object: attributes, monkeypatches and `isinstance` agree) and
    warns once with a DeprecationWarning that names the new path."""
    warnings.warn(
        f"{old} moved to {new}; the old path goes away in the next release.", DeprecationWarning, stacklevel=3
    )
    module = importlib.import_module(new)
    sys.modules[old] = module
    return module


def moved_names(old_module: str, moved: dict):
    """A module `__getattr__` for names that left `old_module`: `{name: new module path}`. Each access warns with a
    DeprecationWarning naming the new path and returns the object from there."""

    def __getattr__(name):
        if name not in moved:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        new = moved[name]
        warnings.warn(
            f"{old_module}.{name} moved to {new}.{name}; the old path goes away in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new), name)

    return __getattr__
