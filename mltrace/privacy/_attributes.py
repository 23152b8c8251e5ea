"""The capture rules applied to what mltrace writes on spans, not only to captured payloads.

Summaries describe features by name (``ml.input.feature.<name>``). Two rules hold for every
summary mltrace writes (stage inputs and outputs, request and response bodies, batch members):

- **Denied features leave no value.** A feature whose name the rules deny (``deny_keys``, such as
  ``ssn`` or ``password``, or a ``deny``/``allow`` field path) keeps its key with the value
  ``[REDACTED]``, as in a captured payload; its statistics are dropped. The rules are those of
  payload capture when it is on (``configure(capture_payloads=CaptureRules(...))``), else
  ``CaptureRules.from_env()`` (the default key list plus ``MLTRACE_PAYLOAD_DENY``/``_ALLOW``).
- **One row's values are not recorded by default.** A single row's per-feature values are the
  raw data of one person (a new user found salaries and ages on spans). By default only what
  describes the row without its values is kept: a missing value (``.nan_count``), a string's
  ``.length``, a vector's ``.size``, a ``.type`` (a vector's mean/min/max are its numbers too). Opt in with
  ``MLTRACE_FEATURE_VALUES=true`` or :func:`record_feature_values`; batches keep per-feature
  statistics over their rows either way.

A feature ``<name>`` is covered by a field-path rule that matches the path ``<name>`` (a dict of
features), ``<index>.<name>`` (records), or whose last segment is ``<name>`` (``user.salary``
covers a feature ``salary``): stage inputs rarely carry the request body's full path, and erring
towards redaction is the safe side.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from typing import Any

from .._errors import ConfigurationError
from .._settings import SETTINGS
from ..summaries._keys import FEATURE_PREFIX, FEATURE_STATS, N_ROWS
from ._redact import redact_text
from ._rules import REDACTED, CaptureRules, match_segments

_ENV = "MLTRACE_FEATURE_VALUES"
_log = logging.getLogger("mltrace.privacy")
_SUFFIXES = tuple("." + s for s in FEATURE_STATS)
_VALUE_STATS = frozenset({None, "mean", "min", "max"})  # of one row: its value, or a vector value's numbers
_lock = threading.Lock()
_feature_values: bool | None = None  # None: read the environment on first use
_env_rules: CaptureRules | None = None
# Decisions per feature name for one rules object, held strongly (an id() key could be reused by
# a later rules object); replaced whole when the rules change.
_denied_cache: tuple[CaptureRules | None, dict[str, bool]] = (None, {})
_key_cache: tuple[CaptureRules | None, dict[str, tuple[bool, bool, str]]] = (None, {})


def record_feature_values(enabled: bool) -> None:
    """Record (``True``) or not (``False``, the default) each feature's value for single-row inputs."""
    global _feature_values
    if not isinstance(enabled, bool):
        raise TypeError(f"record_feature_values takes a bool; got {enabled!r}")
    _feature_values = enabled


def feature_values_recorded() -> bool:
    """Whether single-row feature values are recorded (``MLTRACE_FEATURE_VALUES``, default off)."""
    global _feature_values
    if _feature_values is None:
        raw = os.environ.get(_ENV, "").strip().lower()
        if raw not in ("", "1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ConfigurationError(f"{_ENV} must be true or false; got {raw!r}")
        _feature_values = raw in ("1", "true", "yes", "on")
    return _feature_values


def _values_on_the_request_path() -> bool:
    """:func:`feature_values_recorded`, never raising: a malformed variable means off (the private
    side), said once in the log, instead of an error event on every span."""
    if _feature_values is not None:
        return _feature_values
    try:
        return feature_values_recorded()
    except ConfigurationError as exc:
        record_feature_values(False)
        _log.warning("mltrace: %s; single-row feature values are not recorded", exc)
        return False


def active_rules() -> CaptureRules:
    """The rules of payload capture when it is on, else those of the environment (read once)."""
    capture = SETTINGS.payload_capture
    if capture is not None:
        rules = getattr(capture, "rules", None)
        if isinstance(rules, CaptureRules):
            return rules
    global _env_rules
    if _env_rules is None:
        with _lock:
            if _env_rules is None:
                _env_rules = CaptureRules.from_env()
    return _env_rules


def feature_denied(name: str, rules: CaptureRules) -> bool:
    """Whether the rules keep a feature's values off spans (see the module docstring)."""
    global _denied_cache
    cached_rules, cache = _denied_cache
    if cached_rules is not rules:
        cache = {}
        _denied_cache = (rules, cache)
    found = cache.get(name)
    if found is not None:
        return found
    lower = name.lower()
    segments = tuple(lower.split("."))
    # a feature name is a key path whose last segment alone may be what a rule names (_covers)
    denied = rules.denies(segments, _covers) or rules.allow_state(segments, _covers) != "all"
    if len(cache) > 4096:  # feature names are few in practice; bounded whatever arrives
        cache.clear()
    cache[name] = denied
    return denied


def _covers(pattern: tuple[str, ...], segments: tuple[str, ...]) -> bool:
    return (
        match_segments(pattern, segments)
        or match_segments(pattern, ("0", *segments))
        or pattern[-len(segments) :] == segments
    )


def _split(key: str) -> tuple[str, str | None]:
    """``feature.<name>[.<stat>]`` into (name, stat); a name may itself hold dots."""
    rest = key[len(FEATURE_PREFIX) :]
    for suffix in _SUFFIXES:
        if rest.endswith(suffix):
            return rest[: -len(suffix)], suffix[1:]
    return rest, None


_KEEP = (False, False, "")  # a key that is not a feature's (kind, shape, fingerprint, ...)


def _classify(key: str, rules: CaptureRules) -> tuple[bool, bool, str]:
    """(denied, a value or a value's number, feature name) of a summary key."""
    if not key.startswith(FEATURE_PREFIX):
        return _KEEP
    name, stat = _split(key)
    return feature_denied(name, rules), stat in _VALUE_STATS, name


def span_safe(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` with the rules applied to its per-feature keys (a new dict when anything changed).

    Every key's decision is cached per rules object (summary keys repeat request after request), so
    this costs a dict lookup per key: 1-3 µs for a one-row summary of 8 features
    (``benchmarks/bench_span_safe.py``)."""
    n_rows = summary.get(N_ROWS)
    if n_rows is None:  # no per-feature keys
        return summary
    global _key_cache
    rules = active_rules()
    values = n_rows != 1 or _values_on_the_request_path()
    cached_rules, cache = _key_cache
    if cached_rules is not rules:
        cache = {}
        _key_cache = (rules, cache)
    out: dict[str, Any] | None = None
    for key in summary:
        info = cache.get(key)
        if info is None:
            info = _classify(key, rules)
            if len(cache) > 8192:  # bounded whatever feature names arrive
                cache.clear()
            cache[key] = info
        denied, is_value, name = info
        if not denied and (values or not is_value):
            continue
        if out is None:
            out = dict(summary)
        del out[key]
        if denied:
            out[FEATURE_PREFIX + name] = REDACTED
    return summary if out is None else out


def safe_text(text: str, *, whole: bool = False) -> str:
    """An exception message or status description with the rules' redact patterns applied (cut to
    ``max_string``); ``whole``: every pattern over all of ``text``, uncut (a stack trace, whose
    last line repeats the message). The patterns are linear-time, so a long text stays cheap."""
    rules = active_rules()
    if not whole:
        return redact_text(text, rules)
    return rules.substitute(text)


def exception_attributes(exc: BaseException) -> dict[str, str]:
    """``exception.message`` and ``exception.stacktrace`` with the redact patterns applied, to pass
    to ``span.record_exception(exc, attributes=...)`` (whose own would carry them raw)."""
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"exception.message": safe_text(str(exc)), "exception.stacktrace": safe_text(stack, whole=True)}
