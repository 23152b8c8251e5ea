"""The README's map of the folders stays true: every subpackage of mltrace/ is named in its
"Where things are" paragraph, and the paragraph tells the flow in order."""

from __future__ import annotations

from pathlib import Path

import mltrace

ROOT = Path(mltrace.__file__).parent


def _map_paragraph() -> str:
    readme = (ROOT.parent / "README.md").read_text()
    section = readme.split("## Where things are", 1)[1]
    return section.strip().split("\n\n", 1)[0]


def test_every_subpackage_is_on_the_map() -> None:
    paragraph = _map_paragraph()
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))
    assert len(packages) >= 10
    assert [name for name in packages if f"`mltrace/{name}/`" not in paragraph] == []


def test_the_map_follows_a_request() -> None:
    """request -> span -> summary -> drift -> export -> query -> analysis -> cli, in that order."""
    paragraph = _map_paragraph()
    order = [paragraph.index(f"`mltrace/{name}/`") for name in
             ("spans", "summaries", "drift", "export", "query", "analysis", "cli")]
    assert order == sorted(order)
