"""The package's layering holds: no module reaches into another package's private module for a
name that package exports, the trace sources do not import the factory that builds them, and a
subpackage exports only what the docs name."""

from __future__ import annotations

import ast
import importlib
import re
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


def test_subpackages_export_what_the_docs_name() -> None:
    """Every name in a subpackage's ``__all__`` appears in docs/*.md, the README or the package's
    docstring: a new export is documented, or it is not exported."""
    docs = "\n".join(p.read_text(encoding="utf-8") for p in [*(ROOT.parent / "docs").glob("*.md"),
                                                              ROOT.parent / "README.md"])
    found = {}
    for init in sorted(ROOT.glob("*/__init__.py")):
        package = importlib.import_module(f"mltrace.{init.parent.name}")
        text = docs + (package.__doc__ or "")
        missing = {n for n in getattr(package, "__all__", ()) if not re.search(rf"\b{re.escape(n)}\b", text)}
        if missing:
            found[init.parent.name] = missing
    assert found == {}
