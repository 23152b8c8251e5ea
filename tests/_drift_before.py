"""The drift package as it was before the hot-path rework (issue 13), loaded from git history.

Used by tests/test_drift_differential.py (old and new scoring must agree) and
benchmarks/bench_drift.py (before and after, side by side in one run). The files of
``mltrace/drift/`` at commit :data:`BEFORE` are read with ``git`` into a temporary folder and
imported as the package ``mltrace._drift_before``: its relative imports reach the same
``mltrace`` modules (errors, semantic conventions) as today's package.
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
#: main when the rework started: per-row count updates by fancy indexing, searchsorted then
#: subtraction of each feature's base
BEFORE = "1574da6"
NAME = "mltrace._drift_before"


def load_before() -> ModuleType | None:
    """``mltrace.drift`` at :data:`BEFORE`, or None where git or that commit is not available."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    try:
        listing = subprocess.run(
            ["git", "ls-tree", "--name-only", f"{BEFORE}:mltrace/drift"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        folder = Path(tempfile.mkdtemp(prefix="mltrace-drift-before-"))
        atexit.register(shutil.rmtree, folder, True)
        for name in listing:
            if name.endswith(".py"):
                source = subprocess.run(
                    ["git", "show", f"{BEFORE}:mltrace/drift/{name}"],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                (folder / name).write_text(source)
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_file_location(
        NAME, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
    return module
