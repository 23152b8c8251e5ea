"""Where captured (already redacted) payloads go, keyed by trace id and span id.

A span carries only the reference (``ml.payload.ref``), never the payload: large or sensitive data
stays out of span attributes and out of every trace backend.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from .._errors import InvalidArgumentError
from .._settings import ENV

_HEX = re.compile(r"^[0-9a-f]{1,32}$")
_KIND = re.compile(r"^[a-z0-9_.-]{1,64}$")


def _check(trace_id: str, span_id: str, kind: str) -> None:
    if not (_HEX.match(trace_id) and _HEX.match(span_id) and _KIND.match(kind)):
        raise InvalidArgumentError(f"bad payload key {trace_id!r}/{span_id!r}/{kind!r}")


@runtime_checkable
class PayloadSink(Protocol):
    """Stores one JSON document per (trace id, span id, kind); ``reference`` names a span's documents."""

    def write(self, trace_id: str, span_id: str, kind: str, document: str) -> None: ...

    def reference(self, trace_id: str, span_id: str) -> str: ...

    def close(self) -> None: ...


class LocalStoreSink:
    """The local SQLite trace store's ``payloads`` table (the default sink). Ref: ``local:<trace>/<span>``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        from ..export import LocalStore, resolve_path

        self.path = resolve_path(path)
        self._store: LocalStore | None = None
        self._factory = LocalStore

    def write(self, trace_id: str, span_id: str, kind: str, document: str) -> None:
        _check(trace_id, span_id, kind)
        if self._store is None:  # opened on first write: no file appears until something is captured
            self._store = self._factory(self.path)
        self._store.put_payload(trace_id, span_id, kind, document, time.time_ns())

    def reference(self, trace_id: str, span_id: str) -> str:
        return f"local:{trace_id}/{span_id}"

    def read(self, trace_id: str) -> list[dict[str, object]]:
        """The payload rows of one trace (for tests and the CLI)."""
        if self._store is None:
            self._store = self._factory(self.path)
        return self._store.payloads(trace_id)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class FileSink:
    """One file per document: ``<dir>/<trace id>/<span id>/<kind>.json``. Ref: that span folder's URI.

    Files are written whole (temporary name, then rename). Retention is the user's: point ``dir``
    at a volume with a cleanup policy, or at a folder an object-store sync picks up.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).resolve()

    def _folder(self, trace_id: str, span_id: str) -> Path:
        return self.directory / trace_id / span_id

    def write(self, trace_id: str, span_id: str, kind: str, document: str) -> None:
        _check(trace_id, span_id, kind)
        folder = self._folder(trace_id, span_id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{kind}.json"
        tmp = folder / f".{kind}.{os.getpid()}.tmp"
        tmp.write_text(document, encoding="utf-8")
        os.replace(tmp, target)

    def reference(self, trace_id: str, span_id: str) -> str:
        return self._folder(trace_id, span_id).as_uri() + "/"

    def close(self) -> None:
        return None


def sink_from_env(local_path: str | os.PathLike[str] | None = None) -> PayloadSink:
    """``MLTRACE_PAYLOAD_SINK``: ``local`` (default) or ``file:<dir>``."""
    raw = ENV.PAYLOAD_SINK.get()
    if raw.startswith("file:"):
        target = raw[len("file:") :]
        if target.startswith("//"):
            target = target[2:]
        return FileSink(target)
    if raw in ("", "local"):
        return LocalStoreSink(local_path)
    from .._errors import ConfigurationError

    raise ConfigurationError(f"MLTRACE_PAYLOAD_SINK must be 'local' or 'file:<dir>'; got {raw!r}")
