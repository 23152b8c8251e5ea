"""``redact(obj, rules)``: a JSON-ready, redacted, bounded copy of any payload. Never raises.

One walk does everything: field-path allow/deny, key-name deny, regex redaction of strings and
keys, non-finite floats to strings, depth/node/string caps. Objects other than JSON's types are
turned into JSON first (pydantic models, dataclasses, numpy arrays and scalars, bytes), or into a
short ``repr`` that the regexes then clean.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ._rules import (
    REDACTED,
    SENSITIVE_QUERY_PARAMS,
    TRUNCATED,
    URL_REDACTED,
    CaptureRules,
    _luhn_ok,
    match_segments,
)

_SCAN_SLACK = 2048  # regexes see this much past max_string, so a secret cut in half is still caught


def path_matches(pattern: str, path: str) -> bool:
    """Whether a field-path rule (``features.*.ssn``) covers a dotted path (``features.0.ssn``)."""
    return match_segments(tuple(pattern.lower().split(".")), tuple(path.lower().split(".")))


def redact_query(query: bytes | str) -> str:
    """A URL query string (raw bytes from the ASGI scope, or text) with the value of every
    :data:`SENSITIVE_QUERY_PARAMS` parameter replaced by ``REDACTED``, keys kept, as OTel's
    ``url.query`` convention asks (``q=cat&sig=REDACTED``)."""
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    pairs = parse_qsl(text, keep_blank_values=True)
    return urlencode([(k, URL_REDACTED if k.lower() in SENSITIVE_QUERY_PARAMS else v) for k, v in pairs])


def redact_text(text: str, rules: CaptureRules) -> str:
    """``text`` with every redact pattern applied, then cut to ``max_string`` characters."""
    limit = rules.max_string
    scan = text[: limit + _SCAN_SLACK]
    scan = rules.substitute(scan)
    if len(scan) > limit or len(text) > limit + _SCAN_SLACK:
        return scan[:limit] + TRUNCATED
    return scan


class _Walker:
    __slots__ = ("nodes", "rules")

    def __init__(self, rules: CaptureRules) -> None:
        self.rules = rules
        self.nodes = 0

    def walk(self, obj: Any, path: tuple[str, ...], allowed: bool) -> Any:
        self.nodes += 1
        if self.nodes > self.rules.max_nodes or len(path) > self.rules.max_depth:
            return TRUNCATED
        if path and self.rules.denies(path):
            return REDACTED
        if not allowed:
            state = self.rules.allow_state(path)
            if state == "none":
                return REDACTED
            allowed = state == "all"
        obj = _jsonable(obj)
        if isinstance(obj, Mapping):
            out: dict[str, Any] = {}
            for key, value in obj.items():
                name = key if isinstance(key, str) else str(key)
                out[redact_text(name, self.rules)] = self.walk(value, (*path, name.lower()), allowed)
                if self.nodes > self.rules.max_nodes:
                    break
            return out
        if isinstance(obj, list | tuple):
            items = []
            for index, value in enumerate(obj):
                items.append(self.walk(value, (*path, str(index)), allowed))
                if self.nodes > self.rules.max_nodes:
                    break
            return items
        if not allowed:  # a leaf on the way to an allowed path, but not itself allowed
            return REDACTED
        return self.leaf(obj)

    def leaf(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, bool):
            return obj
        if isinstance(obj, int):
            digits = str(abs(obj)) if obj.bit_length() < 70 else ""
            return REDACTED if 13 <= len(digits) <= 19 and _luhn_ok(digits) else obj
        if isinstance(obj, float):
            if math.isfinite(obj):
                return obj
            return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
        if isinstance(obj, str):
            return redact_text(obj, self.rules)
        return redact_text(_short_repr(obj), self.rules)


def _short_repr(obj: Any) -> str:
    try:
        return repr(obj)[:4096]
    except Exception:
        return f"<{type(obj).__name__}>"


def _jsonable(obj: Any) -> Any:
    """JSON's shape for common non-JSON objects; anything else unchanged (a leaf)."""
    if obj is None or isinstance(obj, str | int | float | bool | Mapping | list | tuple):
        return obj
    try:
        if isinstance(obj, bytes | bytearray | memoryview):
            raw = bytes(obj)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return f"<{len(raw)} bytes, not UTF-8>"
        if isinstance(obj, set | frozenset):
            return list(obj)
        dump = getattr(obj, "model_dump", None)  # pydantic v2
        if callable(dump):
            return dump(mode="json")
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars, torch tensors
        size = getattr(obj, "size", 1)
        if callable(tolist) and isinstance(size, int) and size <= 100_000:
            return tolist()
        if callable(tolist):
            return f"<array shape={getattr(obj, 'shape', '?')} dtype={getattr(obj, 'dtype', '?')}>"
    except Exception:
        return f"<{type(obj).__name__}>"
    return obj


def redact(obj: object, rules: CaptureRules | None = None) -> Any:
    """A redacted, bounded, JSON-serialisable copy of ``obj`` under ``rules``; never raises."""
    rules = rules or CaptureRules()
    try:
        return _Walker(rules).walk(obj, (), False)
    except RecursionError:
        return TRUNCATED
    except Exception:
        return REDACTED
