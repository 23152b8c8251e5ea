"""The attribute keys in mltrace/semconv.py and docs/semantic-conventions.md agree."""

from __future__ import annotations

import ast
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


ROOT = Path(__file__).parents[1]


def _constants() -> dict[str, str]:
    """``value -> file:line`` of every module-level string constant that names an attribute,
    metric or stage, in mltrace/ and the integrations' sources: an UPPER_CASE name whose value
    starts with ``ml.``/``mltrace.`` (not a format id such as ``mltrace.reference/1``), or a
    ``STAGE_*`` name."""
    found: dict[str, str] = {}
    files = [*(ROOT / "mltrace").rglob("*.py"), *ROOT.glob("integrations/*/src/**/*.py")]
    for path in files:
        for node in ast.parse(path.read_text()).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
                node.target if isinstance(node, ast.AnnAssign) else None
            )
            value = getattr(node, "value", None)
            if not (isinstance(target, ast.Name) and target.id.isupper()):
                continue
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                continue
            text = value.value
            if (text.startswith(("ml.", "mltrace.")) and "/" not in text) or target.id.startswith("STAGE_"):
                found.setdefault(text, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_attribute_constant_in_the_code_is_documented() -> None:
    """Not only semconv.py: batching's, generation's and the integrations' keys, and every stage
    name (``batch_wait``), are on the conventions page."""
    constants = _constants()
    assert {"ml.batch.index", "ml.batch.trigger", "batch_wait", "ml.gpu.device_time_ms", "ml.model.dtype"} <= set(
        constants
    )
    missing = {k: where for k, where in constants.items() if f"`{k.rstrip('.')}" not in DOC}
    assert missing == {}


def test_naming_decision_and_unit_policy_are_stated() -> None:
    assert "## Attribute names: `ml.*`, and how they would move" in DOC
    assert "## Units" in DOC and "seconds" in DOC.split("## Units", 1)[1]
