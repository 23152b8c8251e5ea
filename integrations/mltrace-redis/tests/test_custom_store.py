"""The ten-line custom feature store of docs/integrations.md, kept true by running it."""

from __future__ import annotations

from typing import Any

import mltrace
from mltrace.testing import CapturedSpans


# -- verbatim from docs/integrations.md ("Another feature store in ten lines") -------------------
class DictFeatureStore:
    def __init__(self, rows: dict[str, dict[str, float]]) -> None:
        self.rows = rows

    @mltrace.feature_lookup(store="in-memory")
    def get_many(self, keys: list[str]) -> list[dict[str, float] | None]:
        found = [self.rows.get(key) for key in keys]
        hits = sum(row is not None for row in found)
        mltrace.record_lookup(hits=hits, misses=len(keys) - hits)
        return found
# -- end of the docs example ----------------------------------------------------------------------


def test_ten_line_store_makes_a_complete_lookup_span(spans: CapturedSpans) -> None:
    """The decorator plus record_lookup give store name, key count, hits and misses, and no key text."""
    store = DictFeatureStore({"user:1": {"age": 31.0}, "user:2": {"age": 47.0}})
    rows: list[Any] = store.get_many(["user:1", "user:2", "user:3"])
    assert rows == [{"age": 31.0}, {"age": 47.0}, None]
    attrs = spans.stage("feature_lookup").attributes
    assert attrs["ml.feature_store.name"] == "in-memory"
    assert attrs["ml.feature_store.keys"] == 3
    assert (attrs["ml.feature_store.hits"], attrs["ml.feature_store.misses"]) == (2, 1)
    assert not any("user:" in str(value) for value in attrs.values())
