"""What a Redis feature lookup records, shared by the sync and asyncio stores.

A lookup is one ``feature_lookup`` stage span made with the public API (``mltrace.stage`` and
``mltrace.record_lookup``), so this module is also the worked example of a store integration.
Key values are never recorded unless the store was made with ``record_keys=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import mltrace
from mltrace import semconv

DB_SYSTEM_NAME: Final = "db.system.name"
DB_OPERATION_NAME: Final = "db.operation.name"
DB_OPERATION_BATCH_SIZE: Final = "db.operation.batch.size"
DB_NAMESPACE: Final = "db.namespace"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ML_FEATURE_STORE_KEY_VALUES: Final = "ml.feature_store.key_values"  # only with record_keys=True

MAX_KEYS_RECORDED: Final = 16
MAX_KEY_CHARS: Final = 128


def connection_attributes(client: Any) -> dict[str, Any]:
    """``db.system.name``, ``server.address``/``port`` and ``db.namespace`` of a redis-py client."""
    attrs: dict[str, Any] = {DB_SYSTEM_NAME: "redis"}
    kwargs: Mapping[str, Any] = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    host, port, path, db = kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db")
    if host:
        attrs[SERVER_ADDRESS] = str(host)
        if isinstance(port, int):
            attrs[SERVER_PORT] = port
    elif path:
        attrs[SERVER_ADDRESS] = str(path)
    if isinstance(db, int):
        attrs[DB_NAMESPACE] = str(db)
    return attrs


def lookup_stage(store: str, base: Mapping[str, Any], operation: str, batch: int | None = None) -> Any:
    """The ``feature_lookup`` stage span of one round trip."""
    attrs = {**base, DB_OPERATION_NAME: operation}
    if batch is not None:
        attrs[DB_OPERATION_BATCH_SIZE] = batch
    return mltrace.stage(semconv.STAGE_FEATURE_LOOKUP, store=store, attributes=attrs)


def record_outcome(stage: mltrace.Stage, results: Iterable[Any], keys: Sequence[Any] | None, record_keys: bool) -> None:
    """Hits and misses (and, only when allowed, the first key values) on the current stage."""
    if not stage.is_recording():
        return
    hits, misses = count(results)
    mltrace.record_lookup(keys=hits + misses, hits=hits, misses=misses)
    if record_keys and keys:
        stage.set_attribute(ML_FEATURE_STORE_KEY_VALUES, [_key_text(k) for k in list(keys)[:MAX_KEYS_RECORDED]])


def count(results: Iterable[Any]) -> tuple[int, int]:
    """(hits, misses): ``None``, an empty hash/list/set or an error is a miss; an MGET reply inside
    a pipeline counts per key."""
    hits = misses = 0
    for value in results:
        if isinstance(value, list | tuple):
            h, m = count(value)
            hits, misses = hits + h, misses + m
        elif value is None or isinstance(value, BaseException) or (isinstance(value, dict | set) and not value):
            misses += 1
        else:
            hits += 1
    return hits, misses


def pipeline_operation(command_stack: Sequence[Any]) -> tuple[str, list[Any]]:
    """``BATCH <NAME>`` when every queued command has one name, else ``BATCH`` (OpenTelemetry's
    database conventions), and the keys the commands named."""
    names: set[str] = set()
    keys: list[Any] = []
    for entry in command_stack:
        args, options = (entry.args, entry.options) if hasattr(entry, "args") else entry
        if args:
            names.add(str(args[0]).upper())
        keys.extend(options.get("keys") or args[1:2])
    return ("BATCH " + names.pop()) if len(names) == 1 else "BATCH", keys


def _key_text(key: Any) -> str:
    if isinstance(key, bytes):
        key = key.decode("utf-8", "backslashreplace")
    return str(key)[:MAX_KEY_CHARS]
