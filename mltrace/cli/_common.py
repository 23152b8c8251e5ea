"""What every command shares: the source option, ``--json`` output, a progress display, and
errors printed as one clear line instead of a traceback."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console

from .._errors import MLTraceError
from ..query import TraceSource, open_source

T = TypeVar("T")


class CommandError(MLTraceError):
    """A command's input cannot be used (a missing file, an unknown column): printed as one line."""

    @classmethod
    def of(cls, exc: BaseException, prefix: str = "") -> CommandError:
        """The first line of ``exc``'s message (pandas and OS errors can run to several)."""
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else type(exc).__name__
        return cls(f"{prefix}{text}")


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes (``--source``, ``--json``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--source",
        metavar="URL",
        help="jaeger://host:16686, zipkin://host:9411 or local://path.db "
        "(default: $MLTRACE_SOURCE, else the configured exporter, else local://mltrace-traces.db)",
    )
    parent.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    return parent


def consoles() -> tuple[Console, Console]:
    """stdout for results, stderr for progress and errors."""
    return Console(highlight=False, soft_wrap=False), Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, allow_nan=False) + "\n")


def connect(args: argparse.Namespace) -> TraceSource:
    return open_source(args.source)


def from_source(args: argparse.Namespace, fetch: Callable[[TraceSource], T]) -> T:
    """``fetch(source)`` on the ``--source`` the command was given, which is closed afterwards."""
    source = connect(args)
    try:
        return fetch(source)
    finally:
        source.close()


def read_traces(
    args: argparse.Namespace,
    err: Console,
    fetch: Callable[[TraceSource, Callable[[int], None]], T],
    what: str = "Fetching traces",
) -> T:
    """:func:`from_source`, with the progress display's count callback as ``fetch``'s second argument."""

    def under_progress(source: TraceSource) -> T:
        with progress(err, what, quiet=args.json) as update:
            return fetch(source, update)

    return from_source(args, under_progress)


def emit(args: argparse.Namespace, out: Console, data: Any, render: Callable[[Console, Any], None]) -> int:
    """``data`` as one JSON document with ``--json``, else ``render(out, data)``; exit status 0."""
    if args.json:
        print_json(data)
    else:
        render(out, data)
    return 0


@contextmanager
def progress(err: Console, what: str, *, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """A spinner on stderr (terminals only) with a running count; yields the count callback."""
    if quiet or not err.is_terminal:
        yield lambda n: None
        return
    t0 = time.monotonic()
    with err.status(f"{what}…") as status:

        def update(n: int) -> None:
            status.update(f"{what}… {n:,} traces ({time.monotonic() - t0:.1f} s)")

        yield update


TRACE_ID_HELP = (
    "a trace id is 32 hex characters (16 bytes), e.g. 4bf92f3577b34da6a3ce929d0e0e4736: the X-Trace-Id "
    "response header, the first column of `mltrace slow`, or the middle of a traceparent header"
)
_HEX = frozenset("0123456789abcdef")


def trace_id(text: str) -> str:
    """A trace id as given, made canonical: surrounding space and quotes dropped, lower case, and a
    whole ``traceparent`` value (``00-<trace id>-<span id>-01``) accepted. 16 hex characters (a
    64-bit Zipkin/Jaeger id) pass as they are; anything else is refused with what an id looks like."""
    raw = text.strip().strip("'\"").strip().lower()
    parts = raw.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:  # a traceparent value pasted whole
        raw = parts[1]
    hexadecimal = bool(raw) and set(raw) <= _HEX
    if hexadecimal and len(raw) in (16, 32) and raw.strip("0"):
        return raw
    if not raw:
        why = "empty"
    elif not hexadecimal:
        why = "not hexadecimal"
    elif not raw.strip("0"):
        why = "all zeros, an invalid id"
    else:
        why = f"{len(raw)} hex characters, not 32: a shortened id?"
    raise CommandError(f"{text!r} is not a trace id ({why}); {TRACE_ID_HELP}")


def not_found(exc: BaseException) -> CommandError:
    """The source's "not found", and where to find ids that exist."""
    return CommandError(
        f"{CommandError.of(exc)}. Recent trace ids: `mltrace slow --since 1h` (first column), or the "
        "X-Trace-Id header of a response"
    )
