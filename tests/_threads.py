"""Run ``summarize`` from several threads at once and say which payloads came back wrong."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from mltrace.summaries import summarize


def mismatches_under_threads(
    payloads: Sequence[object], expected: Sequence[dict[str, Any]], threads: int = 4
) -> list[int]:
    """Indices whose summary differed from ``expected``, each thread walking the payloads in its own order."""
    failures: list[int] = []

    def work(offset: int) -> None:
        for i in range(len(payloads)):
            j = (i * 7 + offset) % len(payloads)
            if summarize(payloads[j]) != expected[j]:
                failures.append(j)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return failures
