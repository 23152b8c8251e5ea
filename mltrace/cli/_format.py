"""Small formatting helpers for terminal output (times, durations, attribute values)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.markup import escape

from ..analysis import NETWORK, UNACCOUNTED

STAGE_STYLE = {
    "preprocess": "green",
    "feature_lookup": "cyan",
    "inference": "magenta",
    "postprocess": "blue",
    NETWORK: "yellow",
    UNACCOUNTED: "bright_black",
}
SHORT = {
    "preprocess": "prep",
    "feature_lookup": "features",
    "inference": "infer",
    "postprocess": "post",
    NETWORK: "net",
    UNACCOUNTED: "other",
}


def style_of(stage: str | None) -> str:
    return STAGE_STYLE.get(stage or "", "white")


def short(stage: str) -> str:
    return SHORT.get(stage, stage[:10])


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def num(value: float | None) -> str:
    """A duration in ms without the unit, for dense tables."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def when(start_us: int | None) -> str:
    if not start_us:
        return "-"
    return dt.datetime.fromtimestamp(start_us / 1e6).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def value(v: Any, limit: int = 48) -> str:
    if isinstance(v, bool) or v is None:
        text = str(v).lower()
    elif isinstance(v, float):
        text = f"{v:.4g}"
    elif isinstance(v, list | tuple):
        text = "[" + ", ".join(value(x, limit) for x in v) + "]"
    else:
        text = str(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def esc(v: Any) -> str:
    """Text from traces (names, attribute values, reasons) made safe inside rich markup."""
    return escape(str(v))
