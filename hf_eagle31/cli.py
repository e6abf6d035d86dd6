# Copyright 2026 The hf-eagle31 authors. Apache-2.0.
"""Entry point of the `hf-eagle31` console script and of `python -m hf_eagle31.cli`: the dispatcher is
`hf_eagle31.commands` (one module per verb)."""

import sys

from .commands import SUBCOMMANDS, build_parser, main, run  # noqa: F401


if __name__ == "__main__":
    sys.exit(main())
