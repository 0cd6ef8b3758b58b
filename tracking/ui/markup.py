"""HTML building blocks for the UI pages: escaping, formatting, the page layout.

Every user-supplied string (experiment and metric names, tags, file names, log text) reaches the
page through :func:`esc`, :func:`attr` or :func:`json_script`; nothing is concatenated raw.
"""
from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import quote, urlencode


def esc(value: Any) -> str:
    """Text content: ``None`` is empty, everything else is ``str()``-ed and HTML-escaped."""
    return "" if value is None else html.escape(str(value), quote=True)


def attr(value: Any) -> str:
    """A double-quoted attribute value."""
    return f'"{esc(value)}"'


def href(path: str, **query: Any) -> str:
    """A URL with its query (``None`` values dropped, lists repeated), escaped for an attribute."""
    items = []
    for key, value in query.items():
        if value is None or value == "":
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            items.append((key, str(item)))
    return attr(path + ("?" + urlencode(items) if items else ""))


def path_part(value: str) -> str:
    """A URL path segment (run ids, experiment names, file paths keep their ``/``)."""
    return quote(value, safe="/")


def json_script(element_id: str, data: Any) -> str:
    """Data for app.js: inert JSON that cannot close its ``<script>`` element."""
    text = json.dumps(data, default=str, allow_nan=False, separators=(",", ":"))
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" id={attr(element_id)}>{text}</script>'


def fmt_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def fmt_time(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {sec:02d}s"


def fmt_size(size: int | None) -> str:
    if size is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)  # pragma: no cover


def status_badge(status: str) -> str:
    return f'<span class="status status-{esc(status)}" data-status={attr(status)}>{esc(status)}</span>'


def table(headers: Iterable[str], rows: Iterable[str], *, table_id: str | None = None,
          css: str = "grid") -> str:
    """A table from escaped header texts and pre-rendered ``<tr>`` rows."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    ident = f" id={attr(table_id)}" if table_id else ""
    return f'<table class="{css}"{ident}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def kv_table(items: dict[str, Any], *, table_id: str | None = None) -> str:
    if not items:
        return '<p class="muted">none</p>'
    rows = (f"<tr><td>{esc(k)}</td><td>{esc(fmt_value(v))}</td></tr>" for k, v in sorted(items.items()))
    return table(["name", "value"], rows, table_id=table_id, css="grid kv")


def layout(title: str, body: str, *, crumbs: list[tuple[str, str | None]] = (), charts: bool = False) -> str:
    """A whole page. ``crumbs`` are (text, url or None); ``charts`` loads plotly.js."""
    nav = " / ".join(f"<a href={attr(url)}>{esc(text)}</a>" if url else esc(text)
                     for text, url in [("runyard", "/"), *crumbs])
    # plotly.js (4.8 MB) loads async: app.js fetches chart data while the browser compiles it
    scripts = '<script src="/static/plotly.min.js" id="plotly-js" async></script>' if charts else ""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)} · runyard</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/style.css">'
        f"{scripts}<script src=\"/static/app.js\" defer></script></head>"
        f'<body><header><nav>{nav}</nav></header><main><h1>{esc(title)}</h1>{body}</main></body></html>')
