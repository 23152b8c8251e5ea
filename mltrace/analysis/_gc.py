"""Pause the cyclic garbage collector while tens of thousands of span objects are built.

Spans, traces and their attribute dicts form no reference cycles, yet each generation-2
collection rescans all of them; over 10,000 traces that is about a fifth of ``slow``'s time.
The collector is switched back on (if it was on) when the block ends, whatever happens in it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
