"""The package's layering holds: no module reaches into another package's private module for a
name that package exports, and the trace sources do not import the factory that builds them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import mltrace

ROOT = Path(mltrace.__file__).parent


def _relative_imports(path: Path) -> list[ast.ImportFrom]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]


def test_exported_names_come_from_the_package_not_its_private_module() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in _relative_imports(path):
            if node.level != 2 or not node.module or "." not in node.module:
                continue
            package, module = node.module.split(".", 1)
            if not module.startswith("_"):
                continue
            exported = set(getattr(importlib.import_module(f"mltrace.{package}"), "__all__", ()))
            names = [alias.name for alias in node.names if alias.name in exported]
            if names:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module} {names}")
    assert offenders == []


def test_sources_import_the_protocol_not_the_factory() -> None:
    """query/_source.py imports the sources (lazily); they import only the leaf _protocol.py."""
    for path in sorted((ROOT / "query").glob("*.py")):
        if path.name in ("__init__.py", "_source.py"):
            continue
        modules = {node.module for node in _relative_imports(path) if node.level == 1}
        assert "_source" not in modules, path.name
