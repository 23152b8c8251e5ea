"""Shared fixtures: spans are captured from the real SDK pipeline with an in-memory exporter."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from mltrace.testing import CapturedSpans, capture_spans

# Tests must never write ./mltrace-traces.db into the checkout.
os.environ.setdefault("MLTRACE_EXPORTER", "none")


@pytest.fixture
def spans() -> Iterator[CapturedSpans]:
    """Every span that ends during the test."""
    with capture_spans() as captured:
        yield captured
