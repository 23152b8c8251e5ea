"""Spans are captured from the real SDK pipeline with mltrace's in-memory helper."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("MLTRACE_EXPORTER", "none")  # never write a local trace store from tests

from mltrace.testing import CapturedSpans, capture_spans


@pytest.fixture
def spans() -> Iterator[CapturedSpans]:
    """Every span that ends during the test."""
    with capture_spans() as captured:
        yield captured
