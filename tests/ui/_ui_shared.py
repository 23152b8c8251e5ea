"""What the ``mltrace ui`` tests share besides fixtures (conftest.py holds those): the browser's
path and flags, the store's description, a browser tab that records errors and dialogs. A module
of its own so tests import it by a name no other conftest.py shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
HOSTILE_SERVICE = "hostile"


@dataclass
class Store:
    path: Path
    url: str
    demo: dict[str, Any]  # what `mltrace demo --json` found
    profile: Path  # the reference profile the demo's drift monitor scored against


@dataclass
class Tab:
    """A browser page that records what would be a problem: console errors, page errors, dialogs."""

    page: Any
    errors: list[str]
    dialogs: list[str]

    def open(self, url: str) -> Any:
        response = self.page.goto(url, wait_until="load")
        assert response is not None
        return response
