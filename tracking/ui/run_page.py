"""HTML of a run's page (the one ``run.get_portal_url()`` names) and of a sweep's page.

Charts, the live log and the live status are filled in by ``static/app.js`` from the JSON API;
everything else is rendered here, escaped.
"""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from .index import RunRow
from .markup import (attr, esc, fmt_duration, fmt_size, fmt_time, fmt_value, href, json_script,
                     kv_table, layout, path_part, status_badge, table)
from .pages import run_link
from .series import finite


def _iso_to_ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _overview(details: dict[str, Any], record: dict[str, Any]) -> str:
    start, end = _iso_to_ts(details.get("startTimeUtc")), _iso_to_ts(details.get("endTimeUtc"))
    duration = ((end or time.time()) - start) if start else None
    parent = details.get("parentRunId")
    items = [("run id", esc(details["runId"])), ("status", status_badge(details["status"])),
             ("display name", esc(details.get("displayName"))), ("type", esc(details.get("type"))),
             ("target", esc(details.get("target"))),
             ("created (UTC)", esc(fmt_time(record.get("created")))),
             ("started (UTC)", esc(fmt_time(start))), ("ended (UTC)", esc(fmt_time(end))),
             ("duration", f'<span id="run-duration">{esc(fmt_duration(duration))}</span>')]
    if parent:
        items.append(("parent run", run_link(parent)))
    for key in ("script", "command", "arguments"):
        if record.get(key):
            value = record[key]
            items.append((key, esc(" ".join(map(str, value)) if isinstance(value, list) else value)))
    for key in ("exit_code", "signal", "node", "container_id", "reason", "attempts"):
        if key in details:
            value = details[key]
            text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
            items.append((key.replace("_", " "), esc(text)))
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in items)
    return f'<table class="overview" id="overview">{rows}</table>'


def _error(details: dict[str, Any]) -> str:
    error = (details.get("error") or {}).get("error")
    if not error:
        return ""
    if not isinstance(error, dict):
        error = {"message": error}
    parts = [f"<p><b>{esc(error.get('code') or 'Error')}</b>: {esc(error.get('message'))}</p>"]
    for key in ("traceback", "stderr_tail"):
        if error.get(key):
            parts.append(f"<h3>{esc(key.replace('_', ' '))}</h3><pre class=errortext>{esc(error[key])}</pre>")
    return f'<section id="error" class="errorbox"><h2>Error</h2>{"".join(parts)}</section>'


def _timeline(details: dict[str, Any]) -> str:
    events = details.get("statusTimeline") or []
    rows, previous = [], None
    for event in events:
        ts = _iso_to_ts(event.get("timeUtc"))
        gap = fmt_duration(ts - previous) if previous and ts else ""
        previous = ts or previous
        rows.append(f"<tr><td>{status_badge(event['status'])}</td><td>{esc(fmt_time(ts))}</td>"
                    f"<td class=num>{esc(gap)}</td></tr>")
    return table(["status", "time (UTC)", "after"], rows, table_id="timeline")


def _files(run_id: str, files: list[tuple[str, int | None]]) -> str:
    if not files:
        return '<p class="muted" id="files-empty">No files.</p>'
    base = "/runs/" + path_part(run_id) + "/files/"
    rows = [f"<tr><td><a class=download href={attr(base + path_part(name))} download>{esc(name)}</a></td>"
            f"<td class=num>{esc(fmt_size(size))}</td></tr>" for name, size in files]
    return table(["file", "size"], rows, table_id="files")


def _singles(summary: dict[str, dict]) -> str:
    singles = {k: v.get("last") for k, v in summary.items()
               if v.get("count") == 1 and v.get("kind") == "scalar"}
    return kv_table(singles, table_id="single-values") if singles else ""


def children_table(children: list[RunRow], table_id: str = "children") -> str:
    if not children:
        return '<p class="muted">No child runs.</p>'
    names = sorted({m for c in children for m in c.metrics})[:12]
    rows = [f"<tr data-run-id={attr(c.run_id)}><td>{run_link(c)}</td><td>{status_badge(c.status)}</td>"
            f"<td class=num>{esc(fmt_duration(c.duration))}</td>"
            + "".join(f"<td class=num>{esc(fmt_value(c.metrics.get(m)))}</td>" for m in names) + "</tr>"
            for c in children]
    return table(["run", "status", "duration"] + [esc(m) for m in names], rows, table_id=table_id)


def run_page(details: dict[str, Any], record: dict[str, Any], summary: dict[str, dict],
             files: list[tuple[str, int | None]], children: list[RunRow], *, sweep: bool) -> str:
    run_id = details["runId"]
    experiment = details["experiment"]
    snapshot = record.get("snapshot_id")
    links = []
    if sweep:
        links.append(f"<a id=sweep-link href={href('/sweeps/' + path_part(run_id))}>Sweep view: trials ranked</a>")
    if snapshot:
        links.append(f"<a id=snapshot-link href={href('/runs/' + path_part(run_id) + '/snapshot.zip')}>"
                     "Download snapshot (zip)</a>")
    sections = [
        f'<p class="actions">{" · ".join(links)}</p>' if links else "",
        _overview(details, record), _error(details),
        "<h2>Properties</h2>" + kv_table(details.get("properties") or {}, table_id="properties"),
        "<h2>Tags</h2>" + kv_table(details.get("tags") or {}, table_id="tags"),
        "<h2>Status timeline</h2>" + _timeline(details),
        "<h2>Metrics</h2>" + _singles(summary)
        + '<div id="charts" class="charts"><p class="muted" id="charts-loading">loading charts…</p></div>',
        '<h2>Log <span id="log-state" class="muted"></span></h2><pre id="log" class="log" data-empty="(no output yet)"></pre>',
        "<h2>Outputs and files</h2>" + _files(run_id, files),
        "<h2>Child runs</h2>" + children_table(children),
        json_script("run-data", {"run_id": run_id, "status": details["status"]}),
    ]
    title = details.get("displayName") or run_id
    crumbs = [(experiment, "/experiments/" + path_part(experiment)), (run_id, None)]
    return layout(f"Run {title}", "".join(sections), crumbs=crumbs, charts=True)


def sweep_page(view: dict[str, Any], axes: list[dict[str, Any]], record: dict[str, Any],
               status: str) -> str:
    run_id = view["run_id"]
    params = view["parameters"]
    head = ["rank", "trial", "status", esc(view["primary_metric"]) + " (best)", "last", "reports"]
    head += [esc(p) for p in params]
    rows = [f"<tr data-run-id={attr(t['run_id'])}><td class=num>{esc(t['rank'])}</td>"
            f"<td>{run_link(t['run_id'])}</td><td>{status_badge(t['status'])}</td>"
            f"<td class='num primary'>{esc(fmt_value(t['primary']))}</td>"
            f"<td class=num>{esc(fmt_value(t['last']))}</td><td class=num>{esc(t['reports'])}</td>"
            + "".join(f"<td>{esc(fmt_value(t['hyperparameters'].get(p)))}</td>" for p in params) + "</tr>"
            for t in view["trials"]]
    decision_cols = sorted({k for d in view["decisions"] for k in d},
                           key=lambda k: ("trial", "interval", "metric", "threshold", "reason").index(k)
                           if k in ("trial", "interval", "metric", "threshold", "reason") else 9)
    decisions = [("<tr>" + "".join(f"<td>{run_link(str(d[c])) if c == 'trial' and d.get(c) else esc(fmt_value(d.get(c)))}</td>"
                                   for c in decision_cols) + "</tr>") for d in view["decisions"]]
    settings = {"primary metric": view["primary_metric"], "goal": view["goal"],
                **{k: v for k, v in view["settings"].items() if not k.startswith("primary_metric_")}}
    data = {"run_id": run_id, "status": status, "primary_metric": view["primary_metric"],
            "goal": view["goal"],
            "trials": [{"order": t["order"], "run_id": t["run_id"], "primary": t["primary"]}
                       for t in view["by_order"]],
            "axes": [{**a, "values": finite(a["values"])} for a in axes]}
    body = (f"<p>{status_badge(status)} · parent run {run_link(run_id)}</p>"
            + "<h2>Settings</h2>" + kv_table(settings, table_id="sweep-settings")
            + "<h2>Trials by primary metric</h2>" + table(head, rows, table_id="trials")
            + '<h2>Primary metric over trials</h2><div id="sweep-primary" class="chart"></div>'
            + '<h2>Hyperparameters against the primary metric</h2><div id="sweep-parallel" class="chart wide"></div>'
            + "<h2>Early-termination decisions</h2>"
            + (table([esc(c) for c in decision_cols], decisions, table_id="decisions") if decisions
               else '<p class="muted" id="decisions-empty">No trial was stopped early.</p>')
            + json_script("sweep-data", data))
    experiment = record.get("experiment", "")
    crumbs = [(experiment, "/experiments/" + path_part(experiment)), (run_id, "/runs/" + path_part(run_id)),
              ("sweep", None)]
    return layout(f"Sweep {record.get('display_name') or run_id}", body, crumbs=crumbs, charts=True)
