"""The attribute keys in mltrace/semconv.py and docs/semantic-conventions.md agree."""

from __future__ import annotations

from pathlib import Path

from mltrace import semconv

DOC = (Path(__file__).parents[1] / "docs" / "semantic-conventions.md").read_text()


def test_every_ml_key_is_documented() -> None:
    """Each ``ml.``/``mltrace.`` key constant appears in the conventions page."""
    keys = [
        v for k, v in vars(semconv).items()
        if k.isupper() and isinstance(v, str) and v.startswith(("ml.", "mltrace."))
    ]
    assert keys, "no keys found"
    missing = [k for k in keys if f"`{k.rstrip('.')}" not in DOC]
    assert missing == []


def test_known_stages_are_documented() -> None:
    """The four built-in stage names are listed."""
    for name in semconv.KNOWN_STAGES:
        assert f"`{name}`" in DOC
