"""The public API is exactly ``mltrace.__all__``, sorted, and every name in it exists."""

from __future__ import annotations

import inspect

import mltrace


def test_all_is_sorted_and_importable() -> None:
    """``__all__`` is sorted and each name resolves."""
    assert list(mltrace.__all__) == sorted(mltrace.__all__)
    for name in mltrace.__all__:
        assert hasattr(mltrace, name), name


def test_public_names_are_in_all() -> None:
    """Nothing public (other than submodules) is reachable from ``mltrace`` without being in ``__all__``."""
    public = {
        n for n, v in vars(mltrace).items()
        if not n.startswith("_") and not inspect.ismodule(v) and n != "annotations"
    }
    assert public - set(mltrace.__all__) == set()
