"""The package's layering holds: no module reaches into another package's private module for a
name that package exports, the trace sources do not import the factory that builds them, a
subpackage exports only what the docs name, and no modules import each other in a cycle."""

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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_time_nodes(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported: its top-level statements and those inside
    ``if``/``try``/``with``/class bodies, leaving out ``if TYPE_CHECKING:`` bodies and functions."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            test = node.test
            checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            )
            found += _import_time_nodes(node.orelse if checking else [*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            found += _import_time_nodes([*node.body, *(s for h in node.handlers for s in h.body),
                                         *node.orelse, *node.finalbody])
        elif isinstance(node, ast.With | ast.ClassDef):
            found += _import_time_nodes(node.body)
    return found


def _import_graph() -> dict[str, set[str]]:
    """mltrace module -> the mltrace modules it imports at import time. ``from P import name``
    counts as an import of ``P.name`` when that is a module, else of ``P``; an import of one of
    the module's own parent packages is left out (a package's ``__init__`` importing its
    submodules, and a submodule reading a name from it, is the usual shape, not a cycle)."""
    paths = sorted(ROOT.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _import_time_nodes(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
                continue
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                targets.add(sub if sub in modules else source)
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {t for t in targets if t in modules and t != name and t not in ancestors}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules() -> None:
    """No two mltrace modules import each other, directly or through others, when imported
    (imports inside functions and under ``TYPE_CHECKING`` are how a cycle is broken)."""
    graph = _import_graph()
    assert len(graph) > 100 and "mltrace.drift._monitor" in graph["mltrace.drift"]
    assert "mltrace.semconv" in graph["mltrace.drift._monitor"]  # `from .. import semconv`
    assert _cycles(graph) == []


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert _cycles(graph) == [["a", "b", "c"], ["d", "e"]]
