"""Query parameters read as the CLI's options: ``/api/slow?service=api&since=1h`` is parsed by the
very argparse sub-parser ``mltrace slow`` uses, so defaults, types and validation are the CLI's own
and the analysis function is called with the same arguments."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import cast

from .._errors import MLTraceError

COMMANDS = ("slow", "stats", "show", "lineage", "drift")


class ParameterError(MLTraceError, ValueError):
    """A query parameter the command does not take, or a value it rejects (HTTP 400)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting the server."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ParameterError(message)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from ..cli._common import common_options
    from ..cli._drift import add as add_drift
    from ..cli._lineage import add as add_lineage
    from ..cli._show import add as add_show
    from ..cli._slow import add as add_slow
    from ..cli._stats import add as add_stats

    root: argparse.ArgumentParser = _Parser(prog="mltrace", add_help=False)
    # sub-parsers are _Parser too, so their errors raise (the cast only widens the type for add())
    sub = cast("argparse._SubParsersAction[argparse.ArgumentParser]",
               root.add_subparsers(dest="command", parser_class=_Parser))
    parent = common_options()
    for add in (add_slow, add_stats, add_show, add_lineage, add_drift):
        add(sub, parent)
    return {name: sub.choices[name] for name in COMMANDS}


_PARSERS: dict[str, argparse.ArgumentParser] | None = None
# Options a browser may not set: --source is the server's (a page must not point it at another
# host), --json is implied, and offline drift (--profile/--data) would read files named in a URL.
_REFUSED = frozenset({"source", "json", "profile", "data", "window"})


def _flags(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """(options taking a value, options that are switches), by their long name without dashes."""
    valued: set[str] = set()
    switches: set[str] = set()
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs:
            continue
        name = longs[0][2:].replace("-", "_")
        (switches if action.nargs == 0 else valued).add(name)
    return valued, switches


def parse(command: str, query: Iterable[tuple[str, str]], positional: str | None = None,
          defaults: dict[str, str] | None = None) -> argparse.Namespace:
    """The ``Namespace`` ``mltrace COMMAND`` would build from the same options.

    ``query`` holds (name, value) pairs (``min_duration`` or ``min-duration``); ``defaults`` fills
    names the query does not give (the server's ``--service``). Raises :class:`ParameterError`.
    """
    global _PARSERS
    if _PARSERS is None:
        _PARSERS = _subparsers()
    parser = _PARSERS[command]
    valued, switches = _flags(parser)
    given: dict[str, str] = {}
    for raw, value in query:
        name = raw.replace("-", "_")
        if name in _REFUSED or name not in valued | switches:
            raise ParameterError(f"{command} takes no parameter {raw!r} here")
        given[name] = value
    for name, value in (defaults or {}).items():
        if name in valued and name not in given:
            given[name] = value
    argv: list[str] = [command]
    for name, value in given.items():
        flag = "--" + name.replace("_", "-")
        if name in switches:
            if value.lower() not in ("", "0", "false", "no", "off"):
                argv.append(flag)
        elif value != "":
            argv.append(f"{flag}={value}")  # "--since=-5m" stays one option's value
    if positional is not None:
        argv += ["--", positional]
    args = parser.parse_args(argv[1:])
    args.command = command
    args.json = True
    return args

