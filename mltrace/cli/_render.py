"""Rich renderings of each command's plain-data result: tables, a span tree with a timeline bar
per span, and findings written as sentences."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ._format import SHORT, esc, ms, num, percent, short, style_of, value, when

BAR_WIDTH = 32


# -- slow -------------------------------------------------------------------------------------
def render_slow(out: Console, data: dict[str, Any]) -> None:
    scope = f"service {esc(data['service'])}" if data.get("service") else "all services"
    metric = "duration" if data["metric"] == "duration" else f"{esc(data['metric'])} self time"
    out.print(
        f"[bold]Slowest traces[/] of {scope}, last {esc(data.get('since') or 'all time')}: "
        f"{data['scanned']:,} traces scanned from {esc(data.get('source', '?'))}"
    )
    if not data["traces"]:
        out.print("No traces found. Send some traffic, or widen --since.")
        return
    out.print(
        f"Slow = top tenth by {metric}: {data['slow_count']} traces ≥ {ms(data['slow_threshold_ms'])} "
        f"(median {ms(data['median_ms'])})"
        + ("" if data.get("sampled") else "\n")
    )
    if data.get("sampled"):
        out.print(
            f"[yellow]Stage shares and causes from a uniform sample of {data['analysed']:,} traces across the "
            f"whole window (each stands for {data['sample_weight']:,.0f}); counts, threshold and the slowest "
            f"traces from all {data['scanned']:,}. --scan N compares more.[/]\n"
        )
    stages = list(data["stages"]) or list(data["traces"][0]["stages"])
    highlight = list(dict.fromkeys(k for t in data["traces"] for k in t["attributes"]))[:2]
    columns: list[tuple[str, str, list[str]]] = [  # (header, style, cells); cells are plain text
        ("trace id", "", [t["trace_id"] for t in data["traces"]]),
        ("total ms", "", [num(t["duration_ms"]) for t in data["traces"]]),
    ]
    for name in stages:
        columns.append((short(name), style_of(name), [num(t["stages"].get(name, 0.0)) for t in data["traces"]]))
    columns.append(("dominant", "", [t["dominant_stage"] for t in data["traces"]]))
    for key in highlight:
        label = ".".join(key.split(".")[-2:])
        header = label if len(label) <= 14 else key.rsplit(".", 1)[-1]
        columns.append((header, "", [value(t["attributes"].get(key), 12) for t in data["traces"]]))
    # what goes first when narrow: the highlighted attributes, the dominant stage, then the stages
    # with the least time in these traces; the trace id and the total always stay
    by_time = sorted(range(len(stages)), key=lambda j: sum(t["stages"].get(stages[j], 0.0) for t in data["traces"]))
    order = [*range(len(columns) - 1, 2 + len(stages), -1), 2 + len(stages), *(2 + j for j in by_time)]
    kept, dropped = fit_columns(columns, out.width, order)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header, style, _ in kept:
        numeric = header not in ("trace id", "dominant")
        # never cut a number or an id: a column that cannot fit folds onto a second line instead
        table.add_column(esc(header), justify="right" if numeric else "left", style=style or None,
                         no_wrap=True, overflow="fold", min_width=len(header))
    for i, t in enumerate(data["traces"]):
        row = []
        for header, _, cells in kept:
            cell = esc(cells[i])
            if header == "dominant":
                cell = f"[{style_of(t['dominant_stage'])}]{cell}[/]"
            row.append(cell)
        table.add_row(*row)
    out.print(table)
    if dropped:
        names = ", ".join(h for h, _, _ in dropped)
        out.print(f"[bright_black]left out at {out.width} columns: {esc(names)} (widen the terminal, or --json)[/]")
    legend = " · ".join(f"{SHORT[s]}={s}" for s in stages if s in SHORT and SHORT[s] != s)
    out.print(f"[bright_black]self time per stage in ms; {legend}[/]\n")
    shares = [(k, v["share_of_extra"]) for k, v in data["stages"].items() if v["share_of_extra"] >= 0.01]
    if shares:
        parts = " · ".join(f"[{style_of(k)}]{esc(k)}[/] {percent(s)}" for k, s in sorted(shares, key=lambda x: -x[1]))
        out.print(f"Where the slow traces spend their extra time: {parts}")
    _render_causes(out, data["causes"])
    top = data["traces"][0]["trace_id"]
    out.print(f"\n[bright_black]Next: mltrace show {top}   ·   mltrace lineage {top}[/]")


def fit_columns(
    columns: list[tuple[str, str, list[str]]], width: int, drop_order: list[int]
) -> tuple[list[tuple[str, str, list[str]]], list[tuple[str, str, list[str]]]]:
    """The columns that fit in ``width`` at full width (two spaces between; a cell's widest line),
    dropping whole columns
    in ``drop_order`` until they do; then the columns dropped. A number is never cut to ``15…``."""
    widths = [max([len(h), *(len(line) for c in cells for line in c.split("\n"))]) for h, _, cells in columns]
    alive = set(range(len(columns)))
    for i in drop_order:
        if sum(widths[j] for j in alive) + 2 * (len(alive) - 1) <= width:
            break
        alive.discard(i)
    kept = [c for j, c in enumerate(columns) if j in alive]
    return kept, [c for j, c in enumerate(columns) if j not in alive]


def _render_causes(out: Console, causes: list[dict[str, Any]]) -> None:
    if not causes:
        out.print("\nNo attribute stands out in the slow traces (compared with the rest).")
        return
    out.print("\n[bold]Likely causes[/], strongest first:")
    rows = []
    for cause in causes:
        text = esc(cause["reason"])
        if cause.get("also"):
            same = ", ".join(f"{a['attribute']} {a['condition']}" for a in cause["also"])
            text += f"\n[bright_black]same traces: {esc(same)}[/]"
        rows.append((f"{cause['rank']}.", text))
    bullets(out, rows)


def bullets(out: Console, rows: list[tuple[str, str]]) -> None:
    """Marked lines with a hanging indent (markup allowed in the text)."""
    grid = Table.grid(padding=(0, 1), pad_edge=False)
    grid.add_column(no_wrap=True, justify="right")
    grid.add_column()
    for marker, text in rows:
        grid.add_row(marker, text)
    out.print(Padding(grid, (0, 0, 0, 1)))


# -- show -------------------------------------------------------------------------------------
def _bar(offset: float, duration: float, total: float, style: str, width: int = BAR_WIDTH) -> Text:
    total = total or 1.0
    start = min(width - 1, int(offset / total * width))
    length = max(1, min(width - start, round(duration / total * width)))
    return Text(" " * start + "█" * length + " " * (width - start - length), style=style)


_PER_FEATURE = (".feature.",)
_ALWAYS = frozenset({"error.type", "http.response.status_code", "http.status_code"})


def _dull(key: str, v: Any) -> bool:
    """Summary bookkeeping that says nothing in a terminal: zero NaN/inf counts, truncation flags, dtypes."""
    suffix = key.rsplit(".", 1)[-1]
    return (suffix in ("nan_count", "inf_count") and v == 0) or suffix in ("features_truncated", "dtype", "kind")


def _ml_attributes(attrs: dict[str, Any], everything: bool) -> str:
    """The ml.* attributes as one wrapped paragraph; per-feature statistics only when asked."""
    keys = sorted(k for k in attrs if (k.startswith("ml.") and k != "ml.stage") or k in _ALWAYS)
    shown = [k for k in keys if everything or not (any(p in k for p in _PER_FEATURE) or _dull(k, attrs[k]))]
    text = "  ".join(f"{k}={value(attrs[k], 40)}" for k in shown)
    hidden = sum(1 for k in keys if any(p in k for p in _PER_FEATURE)) if not everything else 0
    return text + (f"  (+{hidden} per-feature, --all to show)" if hidden else "")


def _status(code: int | None) -> str:
    """``· HTTP 422`` in the header line: yellow for 4xx (refused), red for 5xx (failed)."""
    if code is None:
        return ""
    style = "red" if code >= 500 else "yellow" if code >= 400 else "green"
    return f"  ·  [{style}]HTTP {code}[/]"


def render_show(out: Console, data: dict[str, Any], *, everything: bool = False) -> None:
    multi = len(data["services"]) > 1
    out.print(
        f"[bold]Trace {data['trace_id']}[/]  {esc(data['name'])}  ·  {esc(', '.join(data['services']))}  ·  "
        f"{ms(data['duration_ms'])}  ·  {when(data['start_us'])}" + _status(data.get("status"))
        + ("  ·  [red]error[/]" if data["error"] else "")
    )
    table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    # the span column holds the attribute paragraph: it wraps (fold, never "…"), and at 80 columns
    # the timeline gives up half its width so that paragraph is not one word per line
    table.add_column("span", ratio=1, overflow="fold")
    bar_width = max(12, min(BAR_WIDTH, (out.width - 40) // 2))
    if multi:
        table.add_column("service")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("self", justify="right", no_wrap=True)
    table.add_column("timeline", no_wrap=True)
    total = data["duration_ms"]
    for span in data["spans"]:
        stage = span["counts_toward"]
        style = "red" if span["error"] else style_of(stage)
        name = Text("  " * span["depth"] + ("└ " if span["depth"] else ""))
        name.append(span["name"], style="bold" if span["depth"] == 0 else "")
        if span["attributes"].get("ml.stage") is None and stage and span["depth"]:
            name.append(f" ({stage})", style="bright_black")
        lines: list[Any] = [name]
        indent = 2 * span["depth"] + 4
        attrs = _ml_attributes(span["attributes"], everything)
        if attrs:
            lines.append(Padding(Text(attrs, style="bright_black"), (0, 0, 0, indent)))
        if span["error"] and span.get("status_message"):
            lines.append(Padding(Text(str(span["status_message"]), style="red"), (0, 0, 0, indent)))
        for event in span.get("events") or ():
            lines.append(Padding(Text(_event_line(event, data["start_us"]), style="magenta"), (0, 0, 0, indent)))
        row: list[Any] = [Group(*lines)]
        if multi:
            row.append(Text(span["service"]))
        bar = _bar(span["offset_ms"], span["duration_ms"], total, style, bar_width)
        row += [ms(span["duration_ms"]), ms(span["self_ms"]), bar]
        table.add_row(*row)
    out.print(table)
    parts = " · ".join(f"[{style_of(k)}]{esc(k)}[/] {ms(v)}" for k, v in data["stages"].items() if v > 0)
    out.print(f"\nSelf time per stage: {parts}   (dominant: {esc(data['dominant_stage'])})")
    path = [seg for seg in data.get("critical_path") or () if seg["duration_ms"] >= 0.01]
    if path:
        chain = " → ".join(f"[{style_of(seg['stage'])}]{esc(seg['name'])}[/] {ms(seg['duration_ms'])}" for seg in path)
        out.print(f"Critical path: {chain}")
    if any("ml.drift.score" in span["attributes"] for span in data["spans"]):
        out.print(f"[bright_black]{esc(DRIFT_NOTE)}[/]")


def _event_line(event: dict[str, Any], trace_start_us: int) -> str:
    """``◆ +12.3 ms exception: ValueError: bad input`` (an event's time, name, first attributes)."""
    attrs = event.get("attributes") or {}
    detail = attrs.get("exception.type") or ""
    if attrs.get("exception.message"):
        detail = f"{detail}: {attrs['exception.message']}" if detail else str(attrs["exception.message"])
    if not detail:
        detail = ", ".join(f"{k}={v}" for k, v in list(attrs.items())[:3])
    at = (int(event.get("time_us") or 0) - trace_start_us) / 1000.0
    return f"◆ +{at:.1f} ms {event.get('name', '')}" + (f": {detail[:200]}" if detail else "")


# -- lineage ----------------------------------------------------------------------------------
def _kv(mapping: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    """``key=value`` pairs; per-feature statistics are counted, not listed (``--json`` has them)."""
    shown = {k: v for k, v in mapping.items() if k not in skip and not k.startswith("feature.")}
    hidden = sum(1 for k in mapping if k.startswith("feature."))
    text = "  ".join(f"{k}={value(v)}" for k, v in shown.items()) or "-"
    return esc(text) + (f"  (+{hidden} per-feature values in --json)" if hidden else "")


DRIFT_NOTE = (
    "drift score: how unusual this request is against the reference (0.99 = more unusual than 99% of "
    "reference rows; a batch: its mean row, max_score its worst); drift alert: whether the recent window "
    "of requests has drifted. One odd request scores high without an alert."
)


def _drift_text(drift: dict[str, Any]) -> str:
    """The drift attributes, then what score and alert mean (they answer different questions)."""
    return _kv(drift) + f"\n[bright_black]{esc(DRIFT_NOTE)}[/]"


def render_lineage(out: Console, data: dict[str, Any]) -> None:
    out.print(
        f"[bold]Lineage of trace {data['trace_id']}[/]  {esc(data['name'])}  ·  {esc(data['service'])}  ·  "
        f"{when(data['start_us'])}  ·  {ms(data['duration_ms'])}" + _status(data.get("status"))
        + ("  ·  [red]error[/]" if data["error"] else "")
    )
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    inp = data["input"]
    if inp:
        table.add_row("input", f"(at {esc(inp['stage'])}) " + _kv(inp["summary"], ("fingerprint",)))
    table.add_row("fingerprint", esc(data["fingerprint"] or "- (no input fingerprint recorded)"))
    for f in data["features"] or [{}]:
        if not f:
            table.add_row("features", "- (no feature_lookup stage)")
            continue
        calls = "; ".join(
            f"{c['name']} {ms(c['duration_ms'])}" + (f" @ {c['server.address']}" if "server.address" in c else "")
            for c in f["calls"]
        )
        text = (
            f"store={value(f['store'])}  keys={value(f['keys'])}  hits={value(f['hits'])}  "
            f"misses={value(f['misses'])}  {ms(f['duration_ms'])}" + (f"  via {calls}" if calls else "")
        )
        table.add_row("features", esc(text))
    table.add_row("model", _kv(data["model"]))
    table.add_row("drift", _drift_text(data["drift"]) if data["drift"] else "- (no drift monitor on this model)")
    outputs = data.get("outputs")
    if outputs is None:  # a record from before outputs were kept apart
        outputs = [{"stage": None, "summary": data["output"]}] if data["output"] else []
    for i, item in enumerate(outputs or [{"stage": None, "summary": {}}]):
        label = "output" if i == 0 else ""
        where = f"(from {esc(item['stage'])}) " if item.get("stage") else ""
        table.add_row(label, where + _kv(item["summary"]))
    stages = "  ".join(f"{k}={ms(v)}" for k, v in data["stages"].items() if v > 0)
    table.add_row("time", stages)
    out.print(table)
    if data["payloads"]:
        out.print("[bold]stored payloads[/] (redacted at capture):")
        for p in data["payloads"]:
            out.print(f"  {esc(p['kind'])}: {esc(value(p['body'], 200))}")
    else:
        out.print("[bright_black]no stored payload (payload capture was off for this request)[/]")
    if data["fingerprint"]:
        out.print(f"\n[bright_black]Same input elsewhere: mltrace lineage --fingerprint {esc(data['fingerprint'])}[/]")


def render_fingerprint(out: Console, data: dict[str, Any]) -> None:
    earlier = data.get("earlier")  # set by the demo, which counts its own run only
    scope = f" in this run ({earlier} more from earlier runs not listed)" if earlier else ""
    out.print(f"[bold]{data['count']} prediction(s)[/] on input {esc(data['fingerprint'])}{scope}")
    if not data["predictions"]:
        return
    rows = data["predictions"]
    columns: list[tuple[str, str, list[str]]] = [
        ("time", "", [when(p["start_us"]) for p in rows]),
        ("trace id", "", [p["trace_id"] for p in rows]),
        ("model", "", [value(p["model_version"]) for p in rows]),
        ("prediction", "", [value(p["prediction"]) for p in rows]),
        ("confidence", "", [value(p["confidence"]) for p in rows]),
        ("drift", "", [value(p["drift_score"]) for p in rows]),
        ("ms", "", [num(p["duration_ms"]) for p in rows]),
    ]
    # narrow terminals lose the model, then the time, confidence and drift; never a cut id or number
    kept, dropped = fit_columns(columns, out.width, [2, 0, 4, 5, 3])
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header, _, _ in kept:
        right = header in ("confidence", "drift", "ms")
        table.add_column(header, justify="right" if right else "left", no_wrap=True, overflow="fold")
    for i in range(len(rows)):
        table.add_row(*(Text(cells[i]) for _, _, cells in kept))
    out.print(table)
    if dropped:
        names = ", ".join(h for h, _, _ in dropped)
        out.print(f"[bright_black]left out at {out.width} columns: {esc(names)} (widen the terminal, or --json)[/]")
