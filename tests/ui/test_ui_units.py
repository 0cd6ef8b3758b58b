"""Pure parts of the UI: the runs query, chart specs and downsampling, escaping, bind rules,
the sweep view and the widget's HTML. No server, no browser."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tracking.errors import ConfigurationError, UserInputError
from tracking.ui.index import RunRow
from tracking.ui.markup import esc, json_script
from tracking.ui.queries import RunQuery, parse_metric_filter, run_page
from tracking.ui.security import check_bind, is_loopback
from tracking.ui.series import envelope_indices, run_charts


def _row(i: int, **kw) -> RunRow:
    base = dict(run_id=f"r{i:03d}", experiment="e", created=1000.0 + i, kind="interactive",
                parent_run_id=None, display_name=None, target="local", status="Completed",
                start=1000.0 + i, end=1010.0 + i * 2, tags={"fold": str(i % 3)},
                metrics={"mse": float(i % 7), "acc": i / 100}, checked=2000.0)
    base.update(kw)
    return RunRow(**base)


ROWS = [_row(i) for i in range(120)] + [
    _row(200, status="Failed", metrics={}, tags={}),
    _row(201, parent_run_id="r000", kind="child"),
    _row(202, status="Running", end=None, metrics={"mse": math.nan})]


def test_query_defaults_page_newest_first_and_hides_children():
    page = run_page(ROWS, RunQuery())
    assert page.total == 122 and page.pages == 3 and len(page.rows) == 50
    assert page.rows[0].run_id == "r202" and page.metric_columns == ["acc", "mse"]
    assert "r201" not in [r.run_id for r in run_page(ROWS, RunQuery(per_page=500)).rows]
    assert run_page(ROWS, RunQuery(children=True, per_page=500)).total == 123


def test_query_filters_status_tag_metric_and_search():
    assert [r.run_id for r in run_page(ROWS, RunQuery(status="Failed")).rows] == ["r200"]
    assert run_page(ROWS, RunQuery(tag="fold=1")).total == 41   # r202 too
    assert run_page(ROWS, RunQuery(tag="fold")).total == 121          # key present
    mse_low = run_page(ROWS, RunQuery(metric="mse <= 1", per_page=500)).rows
    assert mse_low and all(r.metrics["mse"] <= 1 for r in mse_low)
    assert "r202" not in [r.run_id for r in mse_low]                   # NaN never matches
    assert run_page(ROWS, RunQuery(q="R11")).total == 10


def test_query_sorts_with_missing_values_last_both_ways():
    for order in ("asc", "desc"):
        rows = run_page(ROWS, RunQuery(sort="metric:mse", order=order, per_page=500)).rows
        values = [r.metrics.get("mse") for r in rows]
        present = [v for v in values if v is not None and not math.isnan(v)]
        assert present == sorted(present, reverse=order == "desc")
        assert {r.run_id for r in rows[-2:]} == {"r200", "r202"}
    by_duration = run_page(ROWS, RunQuery(sort="duration", order="asc", per_page=5)).rows
    assert by_duration[0].run_id == "r000"


def test_query_from_params_validates():
    query = RunQuery.from_params({"status": "Completed", "sort": "metric:mse", "order": "asc",
                                  "page": "2", "per_page": "100000", "children": "1"})
    assert query.per_page == 500 and query.page == 2 and query.children
    assert query.params(page=None) == {"status": "Completed", "sort": "metric:mse", "order": "asc",
                                       "per_page": 500, "children": "1"}
    for bad in ({"status": "Done"}, {"sort": "password"}, {"order": "up"}, {"page": "x"},
                {"metric": "mse is low"}):
        with pytest.raises((UserInputError, ValueError)):
            RunQuery.from_params(bad)
    assert parse_metric_filter("val loss >= -1e-3")[0] == "val loss"


def test_envelope_keeps_extremes_ends_and_order():
    rng = np.random.default_rng(0)
    y = rng.normal(size=100_003)
    y[12_345], y[99_999] = 40.0, -40.0
    idx = envelope_indices(y, 1000)
    assert len(idx) <= 1000 and np.all(np.diff(idx) > 0)
    assert idx[0] == 0 and idx[-1] == len(y) - 1
    assert {12_345, 99_999} <= set(idx.tolist())
    assert envelope_indices(y[:10], 1000).tolist() == list(range(10))
    with_nan = np.array([np.nan] * 50 + [1.0] * 50)
    assert len(envelope_indices(with_nan, 10)) <= 10


def _table(rows):
    """A metrics table with the store's read schema from (name, kind, step, value, text, vtype)."""
    import pyarrow as pa

    from tracking.metrics import SCHEMA
    cols = {f.name: [] for f in SCHEMA}
    for seq, (name, kind, step, value, text, vtype) in enumerate(rows):
        for key, item in zip(("name", "kind", "step", "time", "seq", "value", "text", "vtype",
                              "description"), (name, kind, step, 100.0 + seq, seq, value, text, vtype, None)):
            cols[key].append(item)
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def test_chart_specs_follow_the_seed_table_of_chart_kinds():
    import json
    rows = [("fib", "list", i, float(v), None, 0) for i, v in enumerate([0, 1, 1, 2, 3])]
    rows += [("loss", "scalar", None, 1.0 / (i + 1), None, 0) for i in range(4)]
    rows += [("stepped", "scalar", s, float(s * s), None, 0) for s in (3, 1, 2)]
    rows += [("wave", "row", None, None, json.dumps({"angle": a, "cos": math.cos(a)}), 4) for a in (0, 1, 2)]
    rows += [("tbl", "table", None, None, json.dumps({"name": ["a", "b"], "score": [1, 2]}), 4)]
    rows += [("once", "scalar", None, 0.5, None, 0), ("msg", "scalar", None, None, "hi", 3),
             ("msg", "scalar", None, None, "there", 3)]
    rows += [("cm", "confusion_matrix", None, None, json.dumps({"data": {"class_labels": ["x", "y"],
                                                                          "matrix": [[1, 0], [2, 3]]}}), 4)]
    rows += [("img", "image", None, None, "images/img_1.png", 3)]
    specs = {s["name"]: s for s in run_charts(_table(rows))}
    assert specs["fib"]["chart"] == "line" and specs["fib"]["y"] == [0, 1, 1, 2, 3]
    assert specs["loss"]["x"] == [0, 1, 2, 3] and specs["loss"]["xlabel"] == "index"
    assert specs["stepped"]["x"] == [1, 2, 3] and specs["stepped"]["y"] == [1, 4, 9]
    assert specs["wave"]["chart"] == "xy" and specs["wave"]["x_name"] == "angle"
    assert specs["wave"]["series"][0]["x"] == [0, 1, 2]
    assert specs["tbl"]["chart"] == "table" and specs["tbl"]["columns"]["name"] == ["a", "b"]
    assert specs["once"] == {"name": "once", "kind": "scalar", "count": 1, "chart": "single", "value": 0.5}
    assert specs["msg"]["chart"] == "values" and [v for _, v in specs["msg"]["values"]] == ["hi", "there"]
    assert specs["cm"]["chart"] == "matrix" and specs["cm"]["matrix"] == [[1, 0], [2, 3]]
    assert specs["img"] == {"name": "img", "kind": "image", "count": 1, "chart": "images",
                            "files": ["images/img_1.png"]}


def test_markup_escapes_and_json_script_cannot_break_out():
    assert esc("<script>&'\"") == "&lt;script&gt;&amp;&#x27;&quot;"
    block = json_script("data", {"name": "</script><script>alert(1)</script>", "x": [1.5]})
    assert "</script><script>" not in block and block.endswith("</script>")
    assert block.count("</script>") == 1


def test_bind_rules():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.8.9.10") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("example.com")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "secret")
    with pytest.raises(ConfigurationError, match="token"):
        check_bind("0.0.0.0", None)


def test_sweep_view_ranks_by_goal_and_reads_decisions(memory_ws):
    from runner import Experiment
    from tracking.records import RunRecords
    from tracking.ui.sweep import parallel_axes, sweep_view
    from tests.ui.uihelpers import SWEEP_TRIALS, make_sweep
    parent, trials = make_sweep(Experiment(memory_ws, "sw"))
    records = RunRecords(memory_ws.store)
    view = sweep_view(records, parent.id, records.read_run(parent.id))
    assert [t["run_id"] for t in view["by_order"]] == [t.id for t in trials]
    assert [t["primary"] for t in view["trials"]] == sorted(t["primary"] for t in view["trials"])
    assert view["trials"][0]["hyperparameters"]["alpha"] == min(a for a, _ in SWEEP_TRIALS)
    assert view["trials"][0]["rank"] == 1 and view["goal"] == "MINIMIZE"
    assert [d["trial"] for d in view["decisions"]] == [trials[2].id]
    assert view["by_order"][2]["status"] == "Canceled"
    axes = parallel_axes(view)
    assert [a["label"] for a in axes] == ["alpha", "solver", "mse"]
    assert axes[1]["ticktext"] == ["auto", "lsqr", "svd"]
    record = dict(records.read_run(parent.id))
    record["hyperdrive"] = {**record["hyperdrive"], "primary_metric_goal": "MAXIMIZE"}
    maximized = sweep_view(records, parent.id, record)
    assert maximized["trials"][0]["hyperparameters"]["alpha"] == max(a for a, _ in SWEEP_TRIALS)


def test_widget_html_fallback_escapes_and_shows_charts(memory_ws, monkeypatch):
    from runner import Experiment
    from tracking.records import RunRecords
    from tracking.widgets import RunDetails
    run = Experiment(memory_ws, "w").start_logging()
    for i in range(5):
        run.log("<i>loss</i>", 1.0 / (i + 1))
    RunRecords(memory_ws.store).put_log_chunk(run.id, "driver", 0, b"<script>x</script>\n")
    run.complete()
    html = RunDetails(run)._repr_html_()
    assert "data-status='Completed'" in html and "<polyline" in html
    assert "&lt;i&gt;loss&lt;/i&gt; (5 points)" in html and "<i>loss</i>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html
    # without ipywidgets, show() falls back to the same HTML
    import builtins
    real_import = builtins.__import__

    def no_ipywidgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError("no ipywidgets here")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_ipywidgets)
    shown = RunDetails(run).show()
    assert isinstance(shown, str) and "data-status='Completed'" in shown


def test_widget_for_a_sweep_shows_trials_and_primary_chart(memory_ws):
    from runner import Experiment
    from tracking.widgets import RunDetails
    from tests.ui.uihelpers import make_sweep
    parent, trials = make_sweep(Experiment(memory_ws, "sw"))
    html = RunDetails(parent)._repr_html_()
    assert "Trials by mse" in html and "mse by trial (minimize)" in html
    best = html.index(trials[0].id)
    assert all(best < html.index(t.id) for t in trials[1:])
