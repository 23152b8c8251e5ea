"""The ``mltrace`` command: ``demo``, ``slow``, ``stats``, ``show``, ``lineage``, ``drift``, ``accuracy``,
``profile build``.

Each command is also a Python function returning plain data (see :mod:`mltrace.analysis`);
``--json`` prints exactly that data.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.text import Text

from .._errors import MLTraceError
from .._version import __version__
from ._accuracy import add as add_accuracy
from ._common import common_options, consoles
from ._demo import add as add_demo
from ._diff import add as add_diff
from ._drift import add as add_drift
from ._lineage import add as add_lineage
from ._profile import add as add_profile
from ._show import add as add_show
from ._slow import add as add_slow
from ._stats import add as add_stats
from ._ui import add as add_ui


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mltrace",
        description="Investigate model-serving traces: why was a request slow, and what did a prediction see?",
        epilog="Start with `mltrace demo`: it serves a model, sends traffic, and runs the other commands on it.",
    )
    parser.add_argument("--version", action="version", version=f"mltrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parent = common_options()
    for add in (add_demo, add_slow, add_stats, add_show, add_lineage, add_drift, add_accuracy, add_profile,
                add_diff, add_ui):
        add(sub, parent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mltrace`` command line; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    out, err = consoles()
    try:
        status: int = args.run(args, out, err)
    except MLTraceError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)))
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except BrokenPipeError:  # `mltrace slow | head`
        sys.stderr.close()
        return 0
    return status
