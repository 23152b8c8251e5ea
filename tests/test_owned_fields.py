"""Classes own their private fields: ``CaptureRules`` answers deny/allow/redact questions itself and
``DriftMonitor`` reports its cached window state and its bin totals, instead of other modules reading
``_compiled``, ``_allow``, ``_deny``, ``_deny_keys``, ``_window``, ``_inputs`` or ``_lock``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import mltrace
from mltrace.drift import _registry
from mltrace.privacy import CaptureRules, redact

PACKAGE = Path(mltrace.__file__).parent


def test_capture_rules_answer_for_their_fields() -> None:
    rules = CaptureRules(allow=("user.name", "features.*"), deny=("**.ssn",))
    assert rules.denies(("password",))  # a default deny key, at any depth
    assert rules.denies(("user", "profile", "ssn"))
    assert not rules.denies(("user", "name"))
    assert rules.allow_state(("user", "name")) == "all"
    assert rules.allow_state(("user",)) == "some"
    assert rules.allow_state(("other",)) == "none"
    assert CaptureRules().allow_state(("anything",)) == "all"
    assert rules.substitute("mail bob@example.com now") == "mail [REDACTED] now"
    # the walk that uses them behaves as before
    assert redact({"user": {"name": "a", "x": 1}, "other": 2}, rules) == {
        "user": {"name": "a", "x": "[REDACTED]"}, "other": "[REDACTED]",
    }


def test_monitor_reports_its_window_state() -> None:
    rng = np.random.default_rng(1)
    profile = mltrace.ReferenceProfile.from_data(rng.normal(size=(2000, 2)), feature_names=["a", "b"])
    monitor = mltrace.DriftMonitor(profile, window=200, recompute_every=50)
    assert monitor.window_state() == (None, False, {})
    monitor.score(rng.normal(loc=3.0, size=(200, 2)))
    score, alert, psi = monitor.window_state()
    assert score is not None and alert
    assert set(psi) == {"a", "b"} and min(psi.values()) > 0.2
    snap = _registry.snapshot(monitor)
    assert (snap.window_score, snap.alert, snap.psi) == (score, alert, psi)


def test_monitor_reports_its_bin_totals() -> None:
    rng = np.random.default_rng(2)
    profile = mltrace.ReferenceProfile.from_data(rng.normal(size=(2000, 2)), feature_names=["a", "b"])
    monitor = mltrace.DriftMonitor(profile, window=50, recompute_every=1000)
    totals, n_codes, names = monitor.bin_totals()
    assert names == ("a", "b") and totals.shape == (2 * n_codes,) and totals.sum() == 0
    for row in rng.normal(size=(120, 2)):  # single rows: their counts are deferred until read
        monitor.score(row)
    totals, _, _ = monitor.bin_totals()
    # every row counted once per feature, past the window's 50 too; a copy, not the live array
    assert totals.reshape(2, n_codes).sum(axis=1).tolist() == [120, 120]
    totals[:] = 0
    assert monitor.bin_totals()[0].sum() == 240


def test_no_reads_of_these_private_fields_from_outside() -> None:
    pattern = re.compile(r"\b(?!self\b)\w+\.(_compiled|_allow|_deny|_deny_keys|_window|_inputs|_lock)\b")
    owners = {"privacy/_rules.py", "drift/_monitor.py"}
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).as_posix() not in owners
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith(("from ", "import "))  # modules, not fields
    ]
    assert offenders == []
