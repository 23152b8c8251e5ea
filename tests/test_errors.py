"""The error tree: every error mltrace raises on purpose is an ``MLTraceError``, is still the builtin
it was before the tree (so ``except ValueError`` in users' code keeps working), and is drawn in
``mltrace/_errors.py``'s docstring with the module that defines it."""

from __future__ import annotations

import builtins
import importlib
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mltrace
from mltrace import _errors
from mltrace.analysis import accuracy, drift_history
from mltrace.drift._files import read_table
from mltrace.export import LocalStore
from mltrace.query import open_source
from mltrace.sampling._consistent import threshold_for
from mltrace.sampling._quantile import RunningQuantile

PACKAGE = Path(mltrace.__file__).parent


def _all_error_classes() -> set[type[BaseException]]:
    """Every MLTraceError subclass defined anywhere in the package (importing each module)."""
    for info in pkgutil.walk_packages(mltrace.__path__, "mltrace."):
        if info.name.startswith(("mltrace.demo", "mltrace.ui", "mltrace.cli.__main__")):
            continue  # optional extras; their errors are imported below where installed
        importlib.import_module(info.name)
    for name in ("mltrace.ui._params", "mltrace.cli._common"):
        importlib.import_module(name)
    seen: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [mltrace.MLTraceError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("mltrace.") and sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return seen


def _drawn() -> dict[str, tuple[str, str]]:
    """``name -> (builtin bases drawn, defining module)`` from the docstring's tree."""
    rows = {}
    for line in (_errors.__doc__ or "").splitlines():
        m = re.match(r"\s*[│ ]*[├└]── (\w+)(?:\((\w+)\))?\s+(mltrace[\w.]*)", line)
        if m:
            rows[m.group(1)] = (m.group(2) or "", m.group(3))
    return rows


def test_tree_drawn_in_errors_module_matches_the_classes() -> None:
    drawn = _drawn()
    classes = _all_error_classes()
    assert {c.__name__ for c in classes} == set(drawn), "draw every MLTraceError subclass in mltrace/_errors.py"
    for cls in classes:
        builtin, module = drawn[cls.__name__]
        assert cls.__module__ == module, cls
        if builtin:
            assert issubclass(cls, getattr(builtins, builtin)), cls


def test_subpackages_reexport_the_same_classes() -> None:
    from mltrace import analysis, drift
    from mltrace.analysis import _errors as analysis_errors
    from mltrace.drift import _errors as drift_errors

    assert drift.ProfileMismatchError is mltrace.ProfileMismatchError is drift_errors.ProfileMismatchError
    assert drift.ProfileFormatError is mltrace.ProfileFormatError is drift_errors.ProfileFormatError
    assert analysis.UnknownStage is analysis_errors.UnknownStage is _errors.UnknownStage


def _profile() -> mltrace.ReferenceProfile:
    rng = np.random.default_rng(0)
    return mltrace.ReferenceProfile.from_data(rng.normal(size=(2000, 2)), feature_names=["a", "b"])


def _store(tmp_path: Path) -> Any:
    LocalStore(tmp_path / "t.db").close()
    return open_source(f"local://{tmp_path / 't.db'}")


CASES: list[tuple[str, type[BaseException], Callable[[Path], object]]] = [
    ("feedback bad trace id", mltrace.InvalidArgumentError, lambda _: mltrace.feedback("xyz", 1)),
    ("feedback zero trace id", mltrace.InvalidArgumentError, lambda _: mltrace.feedback("0" * 32, 1)),
    ("feedback nan label", mltrace.InvalidArgumentError, lambda _: mltrace.feedback("1" * 32, float("nan"))),
    ("monitor window 0", mltrace.InvalidArgumentError, lambda _: mltrace.DriftMonitor(_profile(), window=0)),
    ("thresholds alpha", mltrace.InvalidArgumentError, lambda _: mltrace.DriftThresholds(alpha=2.0)),
    ("profile bins", mltrace.InvalidArgumentError,
     lambda _: mltrace.ReferenceProfile.from_data(np.zeros((2000, 1)), bins=1)),
    ("profile 3-D data", mltrace.InputDataError,
     lambda _: mltrace.ReferenceProfile.from_data(np.zeros((10, 2, 2)))),
    ("profile names count", mltrace.InputDataError,
     lambda _: mltrace.ReferenceProfile.from_data(np.zeros((10, 2)), feature_names=["a"])),
    ("profile mismatch", mltrace.ProfileMismatchError,
     lambda _: mltrace.DriftMonitor(_profile(), strict=True).score({"a": 1.0})),
    ("unknown file type", mltrace.InputDataError, lambda p: read_table(p / "x.json")),
    ("sampling probability", mltrace.InvalidArgumentError, lambda _: threshold_for(1.5)),
    ("running quantile", mltrace.InvalidArgumentError, lambda _: RunningQuantile(q=1.0)),
    ("drift buckets", mltrace.InvalidArgumentError, lambda p: drift_history(_store(p), buckets=0)),
    ("accuracy metric", mltrace.InvalidArgumentError, lambda p: accuracy(_store(p), metric="f1")),
]


@pytest.mark.parametrize(("what", "expected", "call"), CASES, ids=[c[0] for c in CASES])
def test_public_errors_are_mltrace_errors_and_still_value_errors(
    what: str, expected: type[BaseException], call: Callable[[Path], object], tmp_path: Path
) -> None:
    # users' `except ValueError` keeps working, and `except mltrace.MLTraceError` now catches it too
    try:
        call(tmp_path)
    except ValueError as exc:
        caught: BaseException = exc
    else:
        pytest.fail(f"{what}: nothing raised")
    assert isinstance(caught, expected)
    assert isinstance(caught, mltrace.MLTraceError)


def test_no_bare_value_errors_left() -> None:
    """mltrace raises no bare ValueError to its caller (a bare ``raise ValueError`` with no message is
    control flow inside a try)."""
    allowed = {"_settings.py"}  # the settings parsers' reasons become ConfigurationError
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in allowed:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"raise ValueError\(", line):
                offenders.append(f"{rel}:{n}")
    assert offenders == []
