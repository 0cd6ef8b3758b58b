"""Request handlers of the UI: pages and the JSON API, over one store.

Handlers are plain (sync) functions: Starlette runs them in its thread pool, so the blocking
store calls never stall the event loop.
"""
from __future__ import annotations

import json
import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from ..errors import RecordNotFoundError, UserInputError
from ..metric_store import read_summary
from ..records import RunRecords, check_run_id
from ..run_status import LOG_STREAM
from ..status import RunStatus
from ..store import Store
from . import pages, run_page
from .files import NotFound, content_headers, iter_object, list_run_files, run_file_key, snapshot_zip
from .index import StoreIndex, _try_load, attach_run
from .queries import RunQuery, run_page as query_runs
from .series import DEFAULT_POINTS, MetricsCache, json_safe, run_charts
from .sweep import is_sweep, parallel_axes, sweep_view

MAX_LOG_BYTES = 1 << 20
MAX_COMPARE = 10


class JSON(Response):
    """JSON with NaN/inf turned into null/strings (the browser's JSON.parse refuses them)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(json_safe(content), default=str, allow_nan=False,
                          separators=(",", ":")).encode()


class UiHandlers:
    """Everything the routes need: the store, the run index and the metrics cache."""

    def __init__(self, store: Store):
        self.store = store
        self.records = RunRecords(store)
        self.index = StoreIndex(self.records)
        self.metrics = MetricsCache(self.records)
        self._records_cache: dict[str, dict] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------- helpers
    def record(self, run_id: str) -> dict[str, Any]:
        """A run's creation record (written once, so cached)."""
        with self._lock:
            cached = self._records_cache.get(run_id)
        if cached is None:
            cached = self.records.read_run(check_run_id(run_id))
            with self._lock:
                if len(self._records_cache) > 10_000:
                    self._records_cache.clear()
                self._records_cache[run_id] = cached
        return cached

    def _rows(self, run_ids: list[str]) -> list:
        rows = self.index.pool.map(lambda r: _try_load(self.records, r), run_ids)
        return [r for r in rows if r is not None]

    def _experiments(self) -> list[dict[str, Any]]:
        out = []
        for name in self.records.list_experiments():
            known = self.index.known(name)
            count = len(known.rows) if known and known.rows else len(
                self.store.list(f"experiments/{name}/runs"))
            try:
                created = self.store.get_json(f"experiments/{name}/experiment.json").get("created")
            except (RecordNotFoundError, ValueError):
                created = None
            out.append({"name": name, "runs": count, "created": created})
        return out

    def _runs_query(self, request: Request) -> tuple[str, Any, RunQuery, str | None]:
        name = request.path_params["name"]
        try:
            known = self.index.known(name) or self.store.exists(f"experiments/{name}/experiment.json")
        except UserInputError as exc:  # a name safe_key refuses
            raise NotFound(str(exc)) from None
        if not known:
            raise NotFound(f"no experiment named {name!r}")
        try:
            index = self.index.experiment(name)
        except UserInputError as exc:
            raise NotFound(str(exc)) from None
        error = None
        try:
            query = RunQuery.from_params(request.query_params)
        except (UserInputError, ValueError) as exc:
            query, error = RunQuery(), str(exc)
        return name, query_runs(list(index.rows.values()), query), query, error

    # --------------------------------------------------------------- pages
    def home(self, request: Request) -> Response:
        return HTMLResponse(pages.experiments_page(self._experiments()))

    def experiment(self, request: Request) -> Response:
        name, page, query, error = self._runs_query(request)
        return HTMLResponse(pages.runs_page(name, page, query, error))

    def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        record = self.record(run_id)
        handle = attach_run(self.records, run_id, record)
        details = handle.get_details()
        children = self._rows([c["run_id"] for c in self.records.list_children(run_id)])
        html = run_page.run_page(details, record, read_summary(self.records, run_id),
                                 list_run_files(self.records, run_id), children,
                                 sweep=is_sweep(record))
        return HTMLResponse(html)

    def sweep(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        record = self.record(run_id)
        view = sweep_view(self.records, run_id, record, self.index.pool)
        status = attach_run(self.records, run_id, record).get_status()
        return HTMLResponse(run_page.sweep_page(view, parallel_axes(view), record, status))

    def compare(self, request: Request) -> Response:
        run_ids = _compare_ids(request)
        rows = self._rows(run_ids)
        if not rows:
            raise NotFound("none of the runs to compare exist")
        return HTMLResponse(pages.compare_page(rows, [r.run_id for r in rows]))

    def run_file(self, request: Request) -> Response:
        run_id, name = request.path_params["run_id"], request.path_params["name"]
        key = run_file_key(self.records, run_id, name)
        size = self.store.info_size(key)
        media, headers = content_headers(name, size)
        return StreamingResponse(iter_object(self.store, key), media_type=media, headers=headers)

    def snapshot(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        snapshot_id = self.record(run_id).get("snapshot_id")
        if not snapshot_id:
            raise NotFound(f"run {run_id} has no snapshot (interactive runs have none)")
        archive = snapshot_zip(self.store, snapshot_id)

        def chunks():
            with archive:
                while chunk := archive.read(1 << 20):
                    yield chunk
        filename = f"{run_id}-snapshot.zip"
        return StreamingResponse(chunks(), media_type="application/zip",
                                 headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    # ----------------------------------------------------------------- API
    def api_experiments(self, request: Request) -> Response:
        return JSON({"experiments": self._experiments()})

    def api_runs(self, request: Request) -> Response:
        name, page, query, error = self._runs_query(request)
        if error:
            raise UserInputError(error)
        return JSON({"experiment": name, "total": page.total, "page": page.page,
                     "pages": page.pages, "metric_columns": page.metric_columns,
                     "tag_columns": page.tag_columns, "runs": [r.to_json() for r in page.rows]})

    def api_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        details = attach_run(self.records, run_id, self.record(run_id)).get_details()
        return JSON({"details": details, "summary": read_summary(self.records, run_id),
                     "files": [{"name": n, "size": s} for n, s in list_run_files(self.records, run_id)]})

    def api_charts(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        status = attach_run(self.records, run_id, self.record(run_id)).get_status()
        points = _points(request)
        names = request.query_params.getlist("name") or None
        charts = run_charts(self.metrics.table(run_id), points, names)
        return JSON({"run_id": run_id, "status": status,
                     "terminal": RunStatus(status).is_terminal(), "charts": charts})

    def api_log(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        status = attach_run(self.records, run_id, self.record(run_id)).get_status()
        chunks = self.records.log_chunks(run_id, LOG_STREAM)
        start, tail = _int_param(request, "start", 0), _int_param(request, "tail", 0)
        skipped = 0
        if tail and start == 0:
            start = skipped = self._tail_start(run_id, chunks, tail)
        texts, size, pos = [], 0, start
        while pos < len(chunks) and size < MAX_LOG_BYTES:
            data = self.records.read_log_chunk(run_id, LOG_STREAM, chunks[pos])
            texts.append(data.decode("utf-8", "replace"))
            size += len(data)
            pos += 1
        return JSON({"run_id": run_id, "text": "".join(texts), "next": pos, "skipped": skipped,
                     "more": pos < len(chunks), "status": status,
                     "terminal": RunStatus(status).is_terminal()})

    def _tail_start(self, run_id: str, chunks: list[str], tail: int) -> int:
        """First chunk index whose chunks up to the end fit in ``tail`` bytes (at least one)."""
        total, pos = 0, len(chunks)
        while pos > 0:
            size = self.store.info_size(self.records.run_key(run_id, "logs", LOG_STREAM, chunks[pos - 1]))
            if total + size > tail and pos < len(chunks):
                break
            total += size
            pos -= 1
        return pos

    def api_compare(self, request: Request) -> Response:
        run_ids = _compare_ids(request)
        points = _points(request)
        metrics: dict[str, list] = {}
        for run_id in run_ids:
            label = self.record(run_id).get("display_name") or run_id
            for chart in run_charts(self.metrics.table(run_id), points):
                trace = _compare_trace(chart)
                if trace is not None:
                    metrics.setdefault(chart["name"], []).append({"run_id": run_id, "label": label, **trace})
        return JSON({"runs": run_ids, "metrics": metrics})

    def api_sweep(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        view = sweep_view(self.records, run_id, self.record(run_id), self.index.pool)
        return JSON({**view, "axes": parallel_axes(view)})


def _compare_trace(chart: dict[str, Any]) -> dict[str, Any] | None:
    if chart["chart"] == "line":
        return {"x": chart["x"], "y": chart["y"], "xlabel": chart["xlabel"]}
    if chart["chart"] == "xy" and chart["series"]:
        first = chart["series"][0]
        return {"x": first["x"], "y": first["y"], "xlabel": chart["x_name"]}
    if chart["chart"] == "single" and isinstance(chart["value"], (int, float)):
        return {"x": [0], "y": [chart["value"]], "xlabel": "value"}
    return None


def _compare_ids(request: Request) -> list[str]:
    ids: list[str] = []
    for value in request.query_params.getlist("run"):
        ids.extend(v for v in value.split(",") if v)
    if not ids:
        raise UserInputError("choose runs to compare: /compare?run=<id>&run=<id>")
    if len(ids) > MAX_COMPARE:
        raise UserInputError(f"compare at most {MAX_COMPARE} runs at once, got {len(ids)}")
    for run_id in ids:
        check_run_id(run_id)
    return list(dict.fromkeys(ids))


def _int_param(request: Request, key: str, default: int) -> int:
    raw = request.query_params.get(key)
    try:
        return max(0, int(raw)) if raw else default
    except ValueError:
        raise UserInputError(f"{key} must be a whole number, got {raw!r}") from None


def _points(request: Request) -> int:
    return min(20_000, max(10, _int_param(request, "points", DEFAULT_POINTS)))
