"""``mltrace ui`` in a real browser (Debian's Chromium driven by Playwright) against a real
``mltrace ui`` process: every page loads without a console error, shows what the demo planted,
and renders hostile span attributes as text."""

from __future__ import annotations

from typing import Any

import pytest
from _hostile import IMG, ONERROR, SCRIPT
from _ui_shared import HOSTILE_SERVICE, Store, Tab

WINDOW = "since=1d"


def _pages(store: Store) -> dict[str, str]:
    demo = store.demo
    return {
        "overview": f"/?{WINDOW}",
        "slow": f"/slow?{WINDOW}",
        "trace": f"/traces/{demo['show']['trace_id']}",
        "drift": f"/drift?{WINDOW}",
        "lineage": f"/lineage/{demo['lineage']['trace_id']}",
    }


@pytest.mark.parametrize("name", ["overview", "slow", "trace", "drift", "lineage"])
def test_page_loads_without_console_errors(name: str, store: Store, ui_url: str, tab: Tab) -> None:
    """Each page answers 200, draws its SVG charts, and the browser logs no error (a blocked
    resource or CSP violation would be one)."""
    response = tab.open(ui_url + _pages(store)[name])
    assert response.status == 200
    assert response.headers["content-security-policy"].endswith("script-src 'none'")
    assert tab.page.locator("svg").count() >= 1
    assert tab.page.locator("h1").inner_text().strip()
    assert tab.errors == []
    assert tab.dialogs == []


def _planted(store: Store) -> list[dict[str, Any]]:
    causes = {c["rank"]: c for c in store.demo["slow"]["causes"]}
    found = [p for p in store.demo["planted"] if p["found"]]
    assert len(found) == 2, store.demo["planted"]  # the demo itself must find both
    return [causes[p["rank"]] for p in found]


def test_slow_page_draws_each_planted_cause(store: Store, ui_url: str, tab: Tab) -> None:
    """Large batches in inference and cold customers in feature_lookup each get a section with
    the stage's latency with vs without the attribute as a chart."""
    tab.open(ui_url + f"/slow?{WINDOW}")
    sections = tab.page.locator("section.cause")
    headings = [sections.nth(i).locator("h3").inner_text() for i in range(sections.count())]
    for cause in _planted(store):
        match = [i for i, h in enumerate(headings) if cause["stage"] in h and cause["attribute"] in h]
        assert match, (cause["stage"], cause["attribute"], headings)
        section = sections.nth(match[0])
        assert section.locator("svg rect[fill='#dc3912']").count() >= 1  # the "with" bars
        assert section.locator("svg rect[fill='#3366cc']").count() >= 1  # the "without" bars
        legend = section.locator(".legend").inner_text()
        assert "with (" in legend and "without (" in legend
    rows = tab.page.locator("table.grid").last.locator("tr")
    assert rows.count() == 1 + len(store.demo["slow"]["traces"])
    tab.page.locator(".filters-inline a", has_text="feature_lookup").click()  # rank by that stage instead
    tab.page.wait_for_load_state("load")
    assert "stage=feature_lookup" in tab.page.url
    assert "ranked by feature_lookup" in tab.page.locator("main").inner_text()
    assert "ml.feature_store" in tab.page.locator("section.cause").first.inner_text()
    assert tab.errors == []


def test_overview_names_the_planted_causes_with_links(store: Store, ui_url: str, tab: Tab) -> None:
    """The overview's findings say the planted causes in words and link to them on /slow."""
    tab.open(ui_url + f"/?{WINDOW}")
    findings = tab.page.locator("section.findings")
    text = findings.inner_text()
    for cause in _planted(store):
        assert cause["attribute"] in text and cause["stage"] in text
    hrefs = [findings.locator("a").nth(i).get_attribute("href") for i in range(findings.locator("a").count())]
    assert any(h and h.startswith("/slow") and "#cause-" in h for h in hrefs)
    assert any(h and h.startswith("/traces/") for h in hrefs)
    tab.page.locator("section.findings a[href*='#cause-']").first.click()
    tab.page.wait_for_load_state("load")
    assert "/slow" in tab.page.url
    assert tab.errors == []


def test_trace_page_marks_the_critical_path(store: Store, ui_url: str, tab: Tab) -> None:
    """The slowest trace's waterfall has one bar per span, and the inference span (where its time
    went) is on the critical path."""
    show = store.demo["show"]
    tab.open(ui_url + f"/traces/{show['trace_id']}")
    bars = tab.page.locator("svg.waterfall g.span")
    assert bars.count() == len(show["spans"])
    critical = tab.page.locator("svg.waterfall g.span.critical").all_text_contents()
    assert any("inference" in t for t in critical), critical
    assert "critical path" in tab.page.locator("#span-" + show["spans"][0]["span_id"]).inner_text()


def test_drift_page_shows_window_against_threshold(store: Store, ui_url: str, tab: Tab) -> None:
    """The demo's drifted inputs put the window in alert: the chart has the alert line and the
    per-feature charts name features the window flagged."""
    tab.open(ui_url + f"/drift?{WINDOW}")
    assert tab.page.locator("text=alert").count() >= 1
    body = tab.page.locator("main").inner_text()
    assert "in alert" in body
    assert tab.page.locator("[id^='feature-'] svg").count() >= 1


def test_drift_page_compares_a_feature_with_its_reference(store: Store, ui_url: str, tab: Tab) -> None:
    """With --profile, /drift draws the chosen feature's reference shares per quantile bin next to
    the requests'; ?feature= picks another feature."""
    tab.open(ui_url + f"/drift?{WINDOW}")
    chosen = tab.page.locator(".filters-inline a.here").inner_text()
    legend = tab.page.locator("#histogram .legend").inner_text()
    assert "reference (569 rows)" in legend and "requests in the window" in legend
    assert tab.page.locator("#histogram figure > svg rect[fill='#999999']").count() == 10  # deciles of the reference
    other = next(n for n in ("mean texture", "mean radius") if n != chosen)
    tab.page.locator(".filters-inline a", has_text=other).first.click()
    tab.page.wait_for_load_state("load")
    assert tab.page.locator(".filters-inline a.here").inner_text() == other
    assert other in tab.page.locator("#histogram figcaption").inner_text()
    assert tab.errors == []


def test_lineage_page_lists_predictions_of_the_same_input(store: Store, ui_url: str, tab: Tab) -> None:
    """The demo sends one input three times: its lineage page lists all three predictions."""
    same = store.demo["same_input"]
    assert same and same["count"] >= 3
    first = same["predictions"][0]["trace_id"]
    tab.open(ui_url + f"/lineage/{first}")
    rows = tab.page.locator("table.grid").last.locator("tr")
    assert rows.count() == 1 + same["count"]
    text = tab.page.locator("main").inner_text()
    for heading in ("Input", "Features fetched", "Model", "Drift", "Output"):
        assert heading in text
    assert "customer-features: 1 keys" in text  # the feature store's own numbers, not a method's repr


def _hostile_pages(ui_url: str, tab: Tab) -> list[str]:
    tab.open(ui_url + f"/api/slow?service={HOSTILE_SERVICE}&{WINDOW}")
    data = tab.page.evaluate("() => JSON.parse(document.body.innerText)")
    trace_id = data["traces"][0]["trace_id"]
    query = f"service={HOSTILE_SERVICE}&{WINDOW}"
    return [f"/?{query}", f"/slow?{query}", f"/traces/{trace_id}", f"/lineage/{trace_id}", f"/drift?{query}"]


def test_hostile_attributes_render_as_text(ui_url: str, tab: Tab) -> None:
    """Span attributes holding <script> and "onerror= payloads (values, keys, a stage name, a
    model version) show as text: no script element, no onerror attribute, no dialog."""
    for path in _hostile_pages(ui_url, tab):
        response = tab.open(ui_url + path)
        assert response.status == 200, path
        page = tab.page
        assert page.locator("script").count() == 0, path
        assert page.locator("[onerror]").count() == 0, path
        assert page.locator("main img").count() == 0, path
        assert page.evaluate("() => window.__pwned") is None, path
        text = page.locator("body").inner_text()
        if path.startswith("/traces/"):
            for payload in (SCRIPT, ONERROR, IMG):
                assert payload in text, (path, payload)
        if path.startswith("/lineage/"):
            assert ONERROR in text  # the model version
    assert tab.dialogs == []
    assert tab.errors == []
