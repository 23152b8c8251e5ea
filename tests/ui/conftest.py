"""Fixtures for the ``mltrace ui`` tests: a local store holding the demo's traffic (planted slow
paths and drift) and a service whose spans carry hostile strings, ``mltrace ui`` serving it as a
real process on a free loopback port, and the system Chromium driven by Playwright.

Chromium comes from Debian (scripts/chromium.sh), never from ``playwright install``. Where it is
missing the browser tests fail under CI or MLTRACE_E2E=1 and are skipped elsewhere, with the
command that installs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import VENV_BIN, ServerProcess, free_port, server_env
from _ui_shared import CHROMIUM, CHROMIUM_ARGS, HOSTILE_SERVICE, Store, Tab

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The demo's 300 requests (``mltrace demo``), plus 30 hostile ones under another service."""
    folder = tmp_path_factory.mktemp("ui-store")
    db = folder / "ui.db"
    env = server_env({"MLTRACE_EXPORTER": "none"})
    demo = subprocess.run(
        [str(VENV_BIN / "mltrace"), "demo", "--source", f"local://{db}", "--json"],
        env=env, cwd=folder, capture_output=True, text=True, timeout=300, check=True,
    )
    subprocess.run(
        [sys.executable, str(HERE / "_hostile.py"), str(db), HOSTILE_SERVICE, "30"],
        env=server_env({}, pythonpath=[HERE.parent.parent]), cwd=folder, capture_output=True, timeout=120, check=True,
    )
    from mltrace.demo._model import load_model
    from mltrace.drift import ReferenceProfile

    model = load_model()
    profile = ReferenceProfile.from_data(model.training, feature_names=model.feature_names).save(folder / "ref.json")
    return Store(db, f"local://{db}", json.loads(demo.stdout), profile)


@pytest.fixture(scope="session")
def ui_url(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mltrace ui --service mltrace-demo --profile ref.json`` over the store, a real uvicorn
    process on a free port."""
    port = free_port()
    log = tmp_path_factory.mktemp("ui-server") / "ui.log"
    service = store.demo["service"]
    argv = [str(VENV_BIN / "mltrace"), "ui", "--source", store.url, "--port", str(port), "--service", service,
            "--profile", str(store.profile)]
    with ServerProcess(argv, port=port, env=server_env({}), log=log, ready_path="/static/ui.css") as server:
        yield server.url


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: run scripts/chromium.sh (installs Debian's chromium)"
    if os.environ.get("CI") or os.environ.get("MLTRACE_E2E") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")  # not session: Playwright's sync API keeps an event loop running in
def browser() -> Iterator[Any]:  # this thread while it lives, and asyncio.run() in later tests refuses
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, java_script_enabled=True)
    page = context.new_page()
    tab = Tab(page, [], [])
    page.on("console", lambda m: tab.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(f"page error: {e}"))

    def on_dialog(dialog: Any) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield tab
    finally:
        context.close()
