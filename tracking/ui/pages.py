"""HTML of the list pages: experiments, an experiment's runs table, the compare page.

Pure functions from data to a page string; every user string goes through :mod:`markup`.
"""
from __future__ import annotations

from typing import Any

from ..status import RunStatus
from .index import RunRow
from .markup import (attr, esc, fmt_duration, fmt_time, fmt_value, href, json_script, layout,
                     path_part, status_badge, table)
from .queries import RunPage, RunQuery


def experiments_page(experiments: list[dict[str, Any]]) -> str:
    rows = [f"<tr><td><a href={href('/experiments/' + path_part(e['name']))}>{esc(e['name'])}</a></td>"
            f"<td class=num>{esc(e['runs'])}</td><td>{esc(fmt_time(e.get('created')))}</td></tr>"
            for e in experiments]
    body = (table(["experiment", "runs", "created (UTC)"], rows, table_id="experiments")
            if rows else '<p class="muted">No experiments in this store yet.</p>')
    return layout("Experiments", body)


def run_link(row_or_id: RunRow | str, label: str | None = None) -> str:
    run_id = row_or_id if isinstance(row_or_id, str) else row_or_id.run_id
    text = label or (row_or_id.display_name if isinstance(row_or_id, RunRow) else None) or run_id
    return f"<a class=run-link href={href('/runs/' + path_part(run_id))}>{esc(text)}</a>"


def _sort_header(name: str, label: str, base: str, query: RunQuery) -> str:
    order = "asc" if query.sort == name and query.order == "desc" else "desc"
    arrow = (" ▼" if query.order == "desc" else " ▲") if query.sort == name else ""
    return (f"<a class=sort data-sort={attr(name)} "
            f"href={href(base, **query.params(sort=name, order=order, page=None))}>{esc(label)}{arrow}</a>")


def _filter_form(base: str, query: RunQuery, error: str | None) -> str:
    options = "".join(f"<option value={attr(s.value)}{' selected' if query.status == s.value else ''}>"
                      f"{esc(s.value)}</option>" for s in RunStatus)
    hidden = "".join(f"<input type=hidden name={attr(k)} value={attr(v)}>"
                     for k, v in query.params(page=None, status=None, tag=None, metric=None,
                                              q=None, children=None).items())
    problem = f'<p class="error" id="query-error">{esc(error)}</p>' if error else ""
    return (f'<form class="filters" method="get" action={attr(base)}>{hidden}'
            f'<label>status <select name="status"><option value="">any</option>{options}</select></label>'
            f'<label>tag <input name="tag" placeholder="key or key=value" value={attr(query.tag or "")}></label>'
            f'<label>metric <input name="metric" placeholder="mse &lt; 0.5" value={attr(query.metric or "")}></label>'
            f'<label>search <input name="q" placeholder="run id or name" value={attr(query.q or "")}></label>'
            f'<label><input type="checkbox" name="children" value="1"{" checked" if query.children else ""}>'
            f' child runs</label><button type="submit">Filter</button></form>{problem}')


def _run_row_html(row: RunRow, page: RunPage) -> str:
    metrics = "".join(f"<td class=num data-metric={attr(m)}>{esc(fmt_value(row.metrics.get(m)))}</td>"
                      for m in page.metric_columns)
    tags = "".join(f"<td data-tag={attr(t)}>{esc(row.tags.get(t))}</td>" for t in page.tag_columns)
    return (f"<tr data-run-id={attr(row.run_id)}><td><input type=checkbox name=run value={attr(row.run_id)}></td>"
            f"<td>{run_link(row)}</td><td>{status_badge(row.status)}</td>"
            f"<td>{esc(fmt_time(row.created))}</td><td class=num>{esc(fmt_duration(row.duration))}</td>"
            f"<td>{esc(row.target)}</td><td>{esc(row.kind)}</td>{tags}{metrics}</tr>")


def _pager(base: str, query: RunQuery, page: RunPage) -> str:
    links = []
    if page.page > 1:
        links.append(f"<a rel=prev href={href(base, **query.params(page=page.page - 1))}>‹ previous</a>")
    links.append(f"<span>page {page.page} of {page.pages} · {page.total} runs</span>")
    if page.page < page.pages:
        links.append(f"<a rel=next href={href(base, **query.params(page=page.page + 1))}>next ›</a>")
    return f'<div class="pager">{" ".join(links)}</div>'


def runs_page(experiment: str, page: RunPage, query: RunQuery, error: str | None = None) -> str:
    base = "/experiments/" + path_part(experiment)
    headers = ["", _sort_header("run_id", "run", base, query), _sort_header("status", "status", base, query),
               _sort_header("created", "created (UTC)", base, query),
               _sort_header("duration", "duration", base, query),
               _sort_header("target", "target", base, query), _sort_header("kind", "type", base, query)]
    headers += [_sort_header(f"tag:{t}", f"#{t}", base, query) for t in page.tag_columns]
    headers += [_sort_header(f"metric:{m}", m, base, query) for m in page.metric_columns]
    rows = [_run_row_html(row, page) for row in page.rows]
    grid = table(headers, rows, table_id="runs") if rows else '<p class="muted" id="runs-empty">No runs match.</p>'
    body = (_filter_form(base, query, error) + _pager(base, query, page)
            + f'<form method="get" action="/compare">{grid}'
            + '<button type="submit" id="compare-button">Compare selected runs</button></form>'
            + _pager(base, query, page))
    return layout(experiment, body, crumbs=[(experiment, None)])


def compare_page(rows: list[RunRow], run_ids: list[str]) -> str:
    metric_names = sorted({m for row in rows for m in row.metrics})
    head = ["run", "status", "duration"] + [esc(m) for m in metric_names]
    trs = [f"<tr data-run-id={attr(row.run_id)}><td>{run_link(row)}</td><td>{status_badge(row.status)}</td>"
           f"<td>{esc(fmt_duration(row.duration))}</td>"
           + "".join(f"<td class=num>{esc(fmt_value(row.metrics.get(m)))}</td>" for m in metric_names)
           + "</tr>" for row in rows]
    crumbs = [(rows[0].experiment, "/experiments/" + path_part(rows[0].experiment))] if rows else []
    body = (table(head, trs, table_id="compare-runs")
            + '<h2>Metrics overlaid</h2><div id="compare-charts" class="charts"></div>'
            + json_script("compare-data", {"runs": run_ids}))
    return layout("Compare runs", body, crumbs=[*crumbs, ("compare", None)], charts=True)


def error_page(status: int, message: str) -> str:
    return layout(f"{status}", f'<p class="error">{esc(message)}</p>')
