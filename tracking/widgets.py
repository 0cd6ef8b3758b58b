"""Notebook display of runs: ``RunDetails(run).show()`` (azureml.widgets name).

This module holds the HTML rendering used by ``Run._repr_html_``; the live ipywidgets widget
builds on it.
"""
from __future__ import annotations

import html
from typing import Any


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
