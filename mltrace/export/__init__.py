"""Where spans leave the process: exporter factories, the local SQLite store, drop counters."""

from __future__ import annotations

from ._counters import COUNTERS, export_stats
from ._counting import CountingBatchSpanProcessor, CountingExporter
from ._factories import EXPORTERS, build_exporter, choose_exporter
from ._local_store import LocalStore, LocalStoreExporter, resolve_path

__all__ = [
    "COUNTERS",
    "EXPORTERS",
    "CountingBatchSpanProcessor",
    "CountingExporter",
    "LocalStore",
    "LocalStoreExporter",
    "build_exporter",
    "choose_exporter",
    "export_stats",
    "resolve_path",
]
