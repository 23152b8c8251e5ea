"""What each page and ``/api/...`` answer shows, computed by the functions the CLI commands call.

``answer(command, args)`` is the ``--json`` document of ``mltrace COMMAND`` for parsed options
(see :mod:`._params`), so ``/api/slow?service=api&since=1h`` and ``mltrace slow --service api
--since 1h --json`` cannot drift apart. Pages add views of the same traces (time series, charts)
on top. A page asks for the same traces several times (slow, stats and drift of one window): the
:class:`CachedSource` keeps the last few fetches for a few seconds, so one page load reads the
store once.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

from .._errors import InvalidArgumentError
from ..analysis import drift_history, lineage, predictions_for_input, show_trace, slow_traces, trace_stats
from ..query import Trace, TraceSource
from ..query._source import Progress

T = TypeVar("T")
CACHE_SECONDS = 10.0
CACHE_ENTRIES = 8
MAX_LOADED = 250_000  # traces kept by `load` (a page over ?scan=100000 loads its sample once)


class CachedSource:
    """A :class:`TraceSource` that remembers its last few ``find_traces`` and ``get_trace`` answers
    for :data:`CACHE_SECONDS`, and lets one caller at a time reach the source underneath (a
    SQLite connection or an HTTP client shared by the server's threads)."""

    def __init__(self, source: TraceSource, ttl: float = CACHE_SECONDS) -> None:
        self.inner = source
        self.url = source.url
        self.ttl = ttl
        self.lock = threading.RLock()
        self._found: OrderedDict[tuple[Any, ...], tuple[float, list[Trace]]] = OrderedDict()
        self._traces: OrderedDict[str, tuple[float, Trace]] = OrderedDict()
        self._derived: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()
        self._loaded: OrderedDict[str, tuple[float, Trace]] = OrderedDict()

    def _fresh(self, stamp: float) -> bool:
        return time.monotonic() - stamp < self.ttl

    def _purge(self) -> None:
        """Drop what has gone stale, so 100,000 traces fetched once are not held until evicted."""
        caches: tuple[OrderedDict[Any, tuple[float, Any]], ...] = (
            self._found, self._traces, self._derived, self._loaded
        )
        for cache in caches:
            for key in [k for k, (stamp, _) in cache.items() if not self._fresh(stamp)]:
                del cache[key]

    def memo(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, or what it returned for ``key`` less than the cache's lifetime ago (an
        analysis of traces that are themselves still cached: the page and its API agree)."""
        with self.lock:
            self._purge()
            hit = self._derived.get(key)
            if hit is not None and self._fresh(hit[0]):
                self._derived.move_to_end(key)
                return cast(T, hit[1])
            value = compute()
            self._derived[key] = (time.monotonic(), value)
            while len(self._derived) > 4 * CACHE_ENTRIES:
                self._derived.popitem(last=False)
            return value

    def __getattr__(self, name: str) -> Any:
        """The source's optional capabilities (the local store's ``trace_window`` and ``load``),
        behind the lock and remembered like ``find_traces``: analysis then takes the same
        whole-window path through this cache as the command takes without it (``/api/slow`` must
        print what ``mltrace slow --json`` prints), and the overview's slow, stats and drift, which
        list the same window and load the same sample of it, read the store once instead of three
        times. Absent from the source, absent here (``AttributeError``), so callers' checks work."""
        if name not in ("trace_window", "load"):
            raise AttributeError(name)
        method = getattr(self.__dict__["inner"], name)
        if name == "load":
            return lambda trace_ids, progress=None: self._load(method, trace_ids, progress)

        def cached(*args: Any, progress: Any = None, **kwargs: Any) -> Any:
            # trace_window(service, since, min_duration) / load(trace_ids): hashable once ids are a tuple
            key = (name, *(tuple(a) if isinstance(a, list) else a for a in args), *sorted(kwargs.items()))
            return self.memo(key, lambda: method(*args, **kwargs))

        return cached

    def _load(self, method: Callable[..., list[Trace]], trace_ids: list[str], progress: Any) -> list[Trace]:
        """``load`` trace by trace: slow loads its sample plus the window's slowest, stats and drift
        the sample alone; each trace is read once for all three."""
        with self.lock:
            self._purge()
            missing = [t for t in trace_ids if t not in self._loaded]
            if missing:
                now = time.monotonic()
                for trace in method(missing, progress):
                    self._loaded[trace.trace_id] = (now, trace)
                while len(self._loaded) > MAX_LOADED:
                    self._loaded.popitem(last=False)
            return [self._loaded[t][1] for t in trace_ids if t in self._loaded]

    def services(self) -> list[str]:
        """The source's services (every page lists them; over HTTP that is a request each)."""
        return self.memo(("services",), self.inner.services)

    def find_traces(
        self,
        service: str | None,
        since: float | None = None,
        limit: int = 100,
        min_duration: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> list[Trace]:
        key = (service, since, limit, min_duration)
        with self.lock:
            self._purge()
            hit = self._found.get(key)
            if hit is not None and self._fresh(hit[0]):
                self._found.move_to_end(key)
                return hit[1]
            traces = self.inner.find_traces(service, since, limit, min_duration)
            self._found[key] = (time.monotonic(), traces)
            while len(self._found) > CACHE_ENTRIES:
                self._found.popitem(last=False)
            return traces

    def get_trace(self, trace_id: str) -> Trace:
        with self.lock:
            hit = self._traces.get(trace_id)
            if hit is not None and self._fresh(hit[0]):
                return hit[1]
            trace = self.inner.get_trace(trace_id)
            self._traces[trace_id] = (time.monotonic(), trace)
            while len(self._traces) > 64:
                self._traces.popitem(last=False)
            return trace

    def find_by_attribute(self, key: str, value: str, limit: int = 100) -> list[Trace]:
        with self.lock:
            return self.inner.find_by_attribute(key, value, limit)

    def payloads(self, trace_id: str) -> list[dict[str, Any]]:
        reader: Callable[[str], list[dict[str, Any]]] | None = getattr(self.inner, "payloads", None)
        if reader is None:
            return []
        with self.lock:
            return reader(trace_id)

    def close(self) -> None:
        with self.lock:
            self.inner.close()


def answer(source: TraceSource, args: argparse.Namespace) -> Any:
    """:func:`compute_answer`, remembered for a few seconds by a :class:`CachedSource` (the
    overview and /slow ask for the same ``slow`` answer)."""
    if isinstance(source, CachedSource):
        key = ("answer", *sorted((k, v) for k, v in vars(args).items() if k != "run"))
        return source.memo(key, lambda: compute_answer(source, args))
    return compute_answer(source, args)


def compute_answer(source: TraceSource, args: argparse.Namespace) -> Any:
    """What ``mltrace {args.command} --json`` prints for these options (the same calls as
    mltrace/cli/_slow.py, _stats.py, _show.py, _lineage.py and _drift.py make)."""
    command = args.command
    if command == "slow":
        return slow_traces(source, service=args.service, since=args.since, limit=args.limit, stage=args.stage,
                           scan=args.scan, min_duration=args.min_duration)
    if command == "stats":
        return trace_stats(source, service=args.service, since=args.since, by=args.by, scan=args.scan)
    if command == "show":
        return show_trace(source, args.trace_id)
    if command == "lineage":
        if getattr(args, "fingerprint", None):
            return predictions_for_input(source, args.fingerprint, limit=args.limit)
        return lineage(source, args.trace_id)
    if command == "drift":
        return drift_history(source, service=args.service, since=args.since, buckets=args.buckets, by=args.by,
                             scan=args.scan)
    raise InvalidArgumentError(f"no such command: {command}")
