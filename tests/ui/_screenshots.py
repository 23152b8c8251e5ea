"""Refresh docs/img/ui-*.png: the demo's traffic in a fresh store, ``mltrace ui`` over it, and one
screenshot of each page in Debian's Chromium (scripts/chromium.sh).

    .venv/bin/python tests/ui/_screenshots.py            # writes docs/img/ui-{overview,slow,trace,drift,lineage}.png
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from _servers import VENV_BIN, ServerProcess, free_port, server_env  # noqa: E402
from _ui_shared import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

HEIGHT = {"overview": 1500, "slow": 1400, "trace": 1300, "drift": 1500, "lineage": 1100}


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = "local://mltrace-demo.db"  # relative to cwd=tmp: the header reads as a user's would
        demo = json.loads(subprocess.run([str(VENV_BIN / "mltrace"), "demo", "--source", db, "--json"], cwd=tmp,
                                         env=server_env({}), capture_output=True, text=True, check=True).stdout)
        from mltrace.demo._model import load_model
        from mltrace.drift import ReferenceProfile

        model = load_model()
        profile = ReferenceProfile.from_data(model.training, feature_names=model.feature_names).save(f"{tmp}/ref.json")
        port = free_port()
        argv = [str(VENV_BIN / "mltrace"), "ui", "--source", db, "--port", str(port), "--profile", str(profile)]
        with ServerProcess(argv, port=port, env=server_env({}), log=Path(tmp) / "ui.log", ready_path="/static/ui.css",
                           cwd=Path(tmp)) as server:
            base = server.url
            pages = {"overview": "/", "slow": "/slow?since=1h", "trace": f"/traces/{demo['show']['trace_id']}",
                     "drift": "/drift", "lineage": f"/lineage/{demo['same_input']['predictions'][0]['trace_id']}"}
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                for name, path in pages.items():
                    page.goto(base + path, wait_until="load")
                    out = ROOT / "docs" / "img" / f"ui-{name}.png"
                    height = min(HEIGHT[name], page.evaluate("() => document.body.scrollHeight"))
                    page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1400, "height": height},
                                    full_page=True)
                    print(out.relative_to(ROOT))
                browser.close()


if __name__ == "__main__":
    main()
