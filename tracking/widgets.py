"""Notebook display of runs: ``RunDetails(run).show()`` (the azureml.widgets name).

``RunDetails`` shows a run's status, a chart per numeric metric and the tail of its log, and
refreshes itself in a background thread until the run reaches a terminal status. For a sweep
parent it shows the trials ranked by the primary metric and the primary metric over trials.
With ipywidgets 8 installed it is a live widget; without, ``show()`` displays (or prints) the
same content as static HTML, which is also the object's ``_repr_html_``.

Charts are inline SVG drawn here, so nothing needs a network or a notebook extension.

Example::

    from tracking.widgets import RunDetails
    details = RunDetails(run)
    details.show()                     # live until Completed / Failed / Canceled
    details.wait(timeout=600)          # optional: block until the widget saw the end

``run_summary_html(run)`` is the static card ``Run._repr_html_`` shows.
"""
from __future__ import annotations

import collections
import html
import threading
from typing import Any

from .status import RunStatus

SVG_WIDTH, SVG_HEIGHT = 320, 150
MAX_CHARTS = 12
CHART_POINTS = 300


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def run_summary_html(run: Any) -> str:
    """A static HTML card: id, status, link, metric summary. Every user string is escaped."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{esc(str(v.get('kind')))}</td><td>{esc(_fmt(v.get('last')))}</td>"
        f"<td>{esc(_fmt(v.get('min')))}</td><td>{esc(_fmt(v.get('max')))}</td></tr>"
        for name, v in run.get_metrics_summary().items())
    return (f"<div class='runyard-run'><b>Run</b> {esc(run.id)} &middot; "
            f"<b>{esc(run.get_status())}</b> &middot; experiment {esc(run.experiment.name)} &middot; "
            f"<a href='{esc(run.get_portal_url())}' target='_blank'>web view</a>"
            f"<table><tr><th>metric</th><th>kind</th><th>last</th><th>min</th><th>max</th></tr>"
            f"{rows}</table></div>")


# ------------------------------------------------------------------------------ SVG charts
def svg_chart(title: str, series: list[tuple[str, list, list]], *, markers: bool = False) -> str:
    """A small line chart: one polyline per (label, xs, ys); ``None`` values are skipped."""
    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if x is not None and y is not None]
    head = f"<div class='ry-chart'><div><b>{html.escape(title)}</b></div>"
    if not points:
        return head + "<i>no numeric values</i></div>"
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    sx = (SVG_WIDTH - 50) / ((x1 - x0) or 1)
    sy = (SVG_HEIGHT - 30) / ((y1 - y0) or 1)
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
    shapes = []
    for i, (label, xs, ys) in enumerate(series):
        pts = [(45 + (x - x0) * sx, 10 + (y1 - y) * sy) for x, y in zip(xs, ys)
               if x is not None and y is not None]
        color = colors[i % len(colors)]
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        if not markers:
            shapes.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{coords}'>"
                          f"<title>{html.escape(label)}</title></polyline>")
        if markers or len(pts) <= 30:
            shapes += [f"<circle cx='{px:.1f}' cy='{py:.1f}' r='2.5' fill='{color}'/>" for px, py in pts]
    labels = (f"<text x='2' y='14' font-size='10'>{html.escape(_fmt(y1))}</text>"
              f"<text x='2' y='{SVG_HEIGHT - 20}' font-size='10'>{html.escape(_fmt(y0))}</text>"
              f"<text x='45' y='{SVG_HEIGHT - 4}' font-size='10'>{html.escape(_fmt(x0))}</text>"
              f"<text x='{SVG_WIDTH - 5}' y='{SVG_HEIGHT - 4}' font-size='10' text-anchor='end'>"
              f"{html.escape(_fmt(x1))}</text>")
    return (head + f"<svg width='{SVG_WIDTH}' height='{SVG_HEIGHT}' role='img' "
            f"style='border:1px solid #ddd;background:#fff'>{labels}{''.join(shapes)}</svg></div>")


def _chart_html(spec: dict[str, Any]) -> str | None:
    if spec["chart"] == "line":
        return svg_chart(f"{spec['name']} ({spec['total']} points)", [(spec["name"], spec["x"], spec["y"])])
    if spec["chart"] == "xy":
        return svg_chart(f"{spec['name']} (x: {spec['x_name']})",
                         [(s["name"], s["x"], s["y"]) for s in spec["series"]])
    return None


# ------------------------------------------------------------------------------ the widget
class RunDetails:
    """Live view of a run in a notebook (azureml.widgets.RunDetails).

    Args:
        run_instance: a :class:`tracking.Run` (or a run object with the same reading surface).
        refresh_interval: seconds between refreshes while the run is not terminal.
        log_lines: how many trailing log lines to show.
    """

    def __init__(self, run_instance: Any, refresh_interval: float = 2.0, log_lines: int = 40):
        self.run = run_instance
        self.refresh_interval = refresh_interval
        self._log = collections.deque(maxlen=log_lines)
        self._log_next: int | None = None
        self._widget: Any = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self.status = "NotStarted"

    # ----------------------------------------------------------- content
    def _records(self):
        return self.run._records  # noqa: SLF001 - same package: the run's store access

    def _read_log(self) -> None:
        from .run_status import LOG_STREAM
        records = self._records()
        chunks = records.log_chunks(self.run.id, LOG_STREAM)
        if self._log_next is None:  # first read: only the last chunks, not the whole log
            self._log_next = max(0, len(chunks) - 8)
        for chunk in chunks[self._log_next:]:
            text = records.read_log_chunk(self.run.id, LOG_STREAM, chunk).decode("utf-8", "replace")
            self._log.extend(text.splitlines())
        self._log_next = max(self._log_next, len(chunks))

    def _charts_html(self) -> str:
        from .metric_store import read_metrics_table
        from .ui.series import run_charts
        specs = run_charts(read_metrics_table(self._records(), self.run.id), CHART_POINTS)
        charts = [c for c in (_chart_html(s) for s in specs) if c][:MAX_CHARTS]
        singles = [s for s in specs if s["chart"] == "single"]
        table = "".join(f"<tr><td>{html.escape(s['name'])}</td><td>{html.escape(_fmt(s['value']))}</td></tr>"
                        for s in singles)
        return ((f"<table class='ry-singles'>{table}</table>" if table else "")
                + f"<div style='display:flex;flex-wrap:wrap;gap:8px'>{''.join(charts)}</div>")

    def _sweep_html(self) -> str:
        from .ui.sweep import sweep_view
        view = sweep_view(self._records(), self.run.id, self.run._record)  # noqa: SLF001
        metric = view["primary_metric"]
        rows = "".join(
            f"<tr><td>{t['rank'] or ''}</td><td>{html.escape(t['run_id'])}</td><td>{html.escape(t['status'])}</td>"
            f"<td>{html.escape(_fmt(t['primary']) if t['primary'] is not None else '')}</td>"
            f"<td>{html.escape(', '.join(f'{k}={_fmt(v)}' for k, v in t['hyperparameters'].items()))}</td></tr>"
            for t in view["trials"][:50])
        ordered = [t for t in view["by_order"] if t["primary"] is not None]
        chart = svg_chart(f"{metric} by trial ({view['goal'].lower()})",
                          [(metric, [t["order"] for t in ordered], [t["primary"] for t in ordered])],
                          markers=True)
        return (f"<h4>Trials by {html.escape(metric)}</h4><table class='ry-trials'><tr><th>rank</th>"
                f"<th>trial</th><th>status</th><th>{html.escape(metric)}</th><th>hyperparameters</th></tr>"
                f"{rows}</table>{chart}")

    def _header_html(self) -> str:
        esc = html.escape
        return (f"<div class='ry-header'><b>Run</b> {esc(self.run.id)} &middot; status "
                f"<b class='ry-status' data-status='{esc(self.status)}'>{esc(self.status)}</b> &middot; "
                f"<a href='{esc(self.run.get_portal_url())}' target='_blank'>web view</a></div>")

    def _log_html(self) -> str:
        return ("<pre class='ry-log' style='max-height:240px;overflow:auto;background:#f6f8fa'>"
                + html.escape("\n".join(self._log)) + "</pre>")

    def refresh(self) -> dict[str, str]:
        """Read the store once; return the HTML parts (header, body, log)."""
        self.status = self.run.get_status()
        self._read_log()
        is_sweep = self.run._record.get("kind") == "sweep"  # noqa: SLF001
        body = self._sweep_html() if is_sweep else self._charts_html()
        return {"header": self._header_html(), "body": body, "log": self._log_html()}

    def _repr_html_(self) -> str:
        parts = self.refresh()
        return f"<div class='runyard-details'>{parts['header']}{parts['body']}{parts['log']}</div>"

    # ------------------------------------------------------------ display
    def get_widget(self) -> Any:
        """The ipywidgets VBox (built on first call). Raises ImportError without ipywidgets."""
        if self._widget is None:
            import ipywidgets as widgets
            parts = self.refresh()
            self._parts = {k: widgets.HTML(value=v) for k, v in parts.items()}
            self._widget = widgets.VBox([self._parts["header"], self._parts["body"], self._parts["log"]])
        return self._widget

    def show(self) -> Any:
        """Display the widget (or static HTML without ipywidgets) and keep it refreshing until
        the run is terminal. Returns the widget, or the HTML string in the fallback."""
        try:
            widget = self.get_widget()
        except ImportError:
            text = self._repr_html_()
            _display_html(text)
            return text
        from IPython.display import display
        display(widget)
        if not RunStatus(self.status).is_terminal() and self._thread is None:
            self._thread = threading.Thread(target=self._follow, name=f"runyard-details-{self.run.id}",
                                            daemon=True)
            self._thread.start()
        else:
            self._done.set()
        return widget

    def _follow(self) -> None:
        try:
            while not self._done.wait(self.refresh_interval):
                try:
                    parts = self.refresh()
                except Exception as exc:  # noqa: BLE001 - a store hiccup must not kill the widget
                    self._parts["log"].value = f"<i>refresh failed: {html.escape(str(exc))}</i>"
                    continue
                for key, value in parts.items():
                    if self._parts[key].value != value:
                        self._parts[key].value = value
                if RunStatus(self.status).is_terminal():
                    break
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the widget has shown a terminal status (or ``timeout``); return the status."""
        self._done.wait(timeout)
        return self.status

    def stop(self) -> None:
        """Stop refreshing (the widget keeps its last content)."""
        self._done.set()


def _display_html(text: str) -> None:
    try:
        from IPython.display import HTML, display
    except ImportError:
        print(text)
        return
    display(HTML(text))
