"""Run the ``mltrace`` command in-process and read what it printed (shared by the CLI tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mltrace.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)
