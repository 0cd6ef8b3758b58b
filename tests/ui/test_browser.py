"""The web UI in real headless Chromium: every page type against a store with real runs.

Charts are checked through plotly's own data on the chart element (``div.data``), so a test
sees exactly the points the page draws.
"""
from __future__ import annotations

import os
import time

import pytest

from tracking.records import RunRecords

from tests.ui.uihelpers import SWEEP_TRIALS, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHART_Y = """name => {
  const card = Array.from(document.querySelectorAll('#charts .chart-card, #compare-charts .chart-card'))
                    .find(c => c.dataset.metric === name);
  const div = card && card.querySelector('.chart');
  return div && div.data ? div.data.map(t => ({x: t.x, y: t.y, name: t.name})) : null;
}"""


def _wait_charts(tab, selector: str = "#charts") -> None:
    tab.wait_for_selector(f"{selector}[data-loaded='1']", timeout=20_000)


def test_seed_run_page_shows_charts_files_and_log(ui_data, live_server, page):
    seed = ui_data["seed"]
    expected = seed.get_metrics()
    with live_server(ui_data["store"]) as server:
        page.goto(f"{server.url}/runs/{seed.id}")
        _wait_charts(page)
        page.wait_for_function("document.querySelector('#log').dataset.done === '1'")
        for name in ("alpha", "mse"):
            traces = page.evaluate(CHART_Y, name)
            assert traces and len(traces[0]["y"]) == 20
            assert traces[0]["y"] == pytest.approx(expected[name])
        log = page.inner_text("#log")
        assert "alpha is 0.00, and mse is" in log and "alpha is 0.95" in log
        assert page.inner_text("#overview .status") == "Completed"
        links = page.eval_on_selector_all("#files a.download", "as => as.map(a => a.textContent)")
        models = [name for name in links if name.startswith("ridge_")]
        assert len(models) == 20
        for name in ("ridge_0.00.pkl", "ridge_0.95.pkl"):
            with page.expect_download() as info:
                page.click(f"#files a.download:text-is('{name}')")
            with open(info.value.path(), "rb") as fh:
                downloaded = fh.read()
            stored = ui_data["store"].get_bytes(RunRecords(ui_data["store"]).file_key(seed.id, name))
            assert downloaded == stored and len(downloaded) > 100
        with page.expect_download() as info:
            page.click("#snapshot-link")
        import zipfile
        with zipfile.ZipFile(info.value.path()) as archive:
            assert {"train.py", "mylib.py"} <= set(archive.namelist())
            assert b"get_alphas" in archive.read("mylib.py")
        screenshot(page, "run-seed")


def test_runs_table_click_through_to_run(ui_data, live_server, page):
    seed = ui_data["seed"]
    with live_server(ui_data["store"]) as server:
        page.goto(server.url + "/")
        page.click("#experiments a:text-is('train-on-local')")
        page.wait_for_selector("#runs")
        row = page.locator(f"#runs tr[data-run-id='{seed.id}']")
        assert row.locator(".status").inner_text() == "Completed"
        assert row.locator("td[data-metric='mse']").inner_text() == f"{seed.get_metrics()['mse'][-1]:.6g}"
        screenshot(page, "runs-table")
        row.locator("a.run-link").click()
        page.wait_for_url(f"**/runs/{seed.id}")
        _wait_charts(page)
        assert seed.id in page.inner_text("#overview")


def test_every_chart_kind_and_escaping(ui_data, live_server, page):
    run = ui_data["logging"]
    with live_server(ui_data["store"]) as server:
        page.goto(f"{server.url}/runs/{run.id}")
        _wait_charts(page)
        fib = page.evaluate(CHART_Y, "Fibonacci")
        assert fib[0]["y"] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
        sigmoid = page.evaluate(CHART_Y, "Sigmoid")
        assert len(sigmoid[0]["y"]) == 20 and sigmoid[0]["y"][0] == pytest.approx(1 / (1 + 2.718281828**10))
        cosine = page.evaluate(CHART_Y, "Cosine Wave")   # log_row, two numeric columns
        assert cosine[0]["x"] == [i / 2 for i in range(-10, 10)]
        assert cosine[0]["name"] == "cos"
        sine = page.evaluate(CHART_Y, "Sine Wave")        # log_table, two numeric columns
        assert len(sine[0]["x"]) == 8 and sine[0]["name"] == "sine"
        matrix = page.evaluate("""() => {
            const card = Array.from(document.querySelectorAll('.chart-card')).find(c => c.dataset.metric === 'confusion');
            return card.querySelector('.chart').data[0].z; }""")
        assert matrix == [[5, 1], [2, 7]]
        page.wait_for_function("""() => { const img = document.querySelector('.chart-card img');
                                         return img && img.complete && img.naturalWidth === 2; }""")
        # escaping: the tag value shows as text, never runs
        assert page.evaluate("window.__pwned") is None
        tags = page.inner_text("#tags")
        assert "<script>window.__pwned = 1</script>" in tags
        assert page.locator("#single-values").inner_text().count("<b>bold</b> metric") == 1
        assert "<notes>.txt" in page.inner_text("#files")
        assert page.inner_text("#properties").count("diabetes") == 1
        screenshot(page, "run-chart-kinds")
        # the same tag value in the runs table
        page.goto(f"{server.url}/experiments/logging-api")
        assert "<script>window.__pwned = 1</script>" in page.inner_text("#runs")
        assert page.evaluate("window.__pwned") is None


def test_failed_run_shows_error_details(ui_data, live_server, page):
    with live_server(ui_data["store"]) as server:
        page.goto(f"{server.url}/runs/{ui_data['failed'].id}")
        text = page.inner_text("#error")
        assert "division by <zero>" in text and "ZeroDivisionError" in text
        timeline = page.inner_text("#timeline")
        assert "Running" in timeline and "Failed" in timeline
        screenshot(page, "run-failed")


def test_live_log_appends_without_reload(tmp_path, live_server, page):
    from runner import Experiment, Workspace
    ws = Workspace(store=f"file://{tmp_path}/store")
    run = Experiment(ws, "live").start_logging()
    records = RunRecords(ws.store)
    records.put_log_chunk(run.id, "driver", 0, b"epoch 0 <start>\n")
    with live_server(ws.store) as server:
        page.goto(f"{server.url}/runs/{run.id}")
        page.wait_for_function("document.querySelector('#log').textContent.includes('epoch 0 <start>')")
        page.evaluate("window.__marker = 'same page'")
        for seq in range(1, 4):
            line = f"epoch {seq} loss={1 / seq:.3f}\n"
            records.put_log_chunk(run.id, "driver", seq, line.encode())
            run.log("loss", 1 / seq)
            started = time.monotonic()
            page.wait_for_function(f"document.querySelector('#log').textContent.includes('epoch {seq} ')",
                                   timeout=3000)
            assert time.monotonic() - started < 3.0
        assert page.evaluate("window.__marker") == "same page"   # no reload happened
        assert page.inner_text("#overview .status") == "Running"
        run.complete()
        page.wait_for_function("document.querySelector('#overview .status').textContent === 'Completed'",
                               timeout=5000)
        page.wait_for_function("""() => { const c = Array.from(document.querySelectorAll('.chart-card'))
                                      .find(c => c.dataset.metric === 'loss');
                                  return c && c.querySelector('.chart').data[0].y.length === 3; }""", timeout=8000)
        screenshot(page, "run-live-log")


def test_sweep_page_ranks_trials_by_primary_metric(ui_data, live_server, page):
    parent = ui_data["sweep"]
    with live_server(ui_data["store"]) as server:
        page.goto(f"{server.url}/runs/{parent.id}")
        page.click("#sweep-link")
        page.wait_for_selector("#trials")
        ranked = page.eval_on_selector_all("#trials tbody tr td.primary", "tds => tds.map(t => +t.textContent)")
        assert ranked == sorted(ranked) and len(ranked) == len(SWEEP_TRIALS)
        best_alpha = min(a for a, _ in SWEEP_TRIALS)
        first = page.locator("#trials tbody tr").first.inner_text()
        assert f"{best_alpha:g}" in first
        page.wait_for_function("document.querySelector('#sweep-parallel').data !== undefined")
        primary = page.evaluate("document.querySelector('#sweep-primary').data[0].y")
        assert sorted(primary) == ranked
        dims = page.evaluate("document.querySelector('#sweep-parallel').data[0].dimensions.map(d => d.label)")
        assert dims == ["alpha", "solver", "mse"]
        decisions = page.inner_text("#decisions")
        assert "outside the bandit slack" in decisions and ui_data["trials"][2].id in decisions
        screenshot(page, "sweep")


def test_compare_page_overlays_runs(ui_data, live_server, page):
    trials = ui_data["trials"][:3]
    with live_server(ui_data["store"]) as server:
        page.goto(f"{server.url}/experiments/sweeps?children=1")
        for trial in trials:
            page.check(f"#runs tr[data-run-id='{trial.id}'] input[name=run]")
        page.click("#compare-button")
        page.wait_for_selector("#compare-charts[data-loaded='1']")
        traces = page.evaluate(CHART_Y, "mse")
        assert len(traces) == 3
        by_run = {t["name"]: t["y"] for t in traces}
        for trial in trials:
            assert by_run[trial.id] == pytest.approx(trial.get_metrics()["mse"])
        screenshot(page, "compare")


def test_token_is_required_and_cookie_keeps_the_session(ui_data, live_server, page):
    seed = ui_data["seed"]
    with live_server(ui_data["store"], token="s3cret-token") as server:
        response = page.goto(f"{server.url}/runs/{seed.id}")
        assert response.status == 401
        response = page.goto(f"{server.url}/runs/{seed.id}?token=s3cret-token")
        assert response.status == 200
        _wait_charts(page)   # API calls and plotly.js were authorised by the cookie
        assert len(page.evaluate(CHART_Y, "alpha")[0]["y"]) == 20
        with page.expect_download() as info:
            page.click("#files a.download:text-is('ridge_0.50.pkl')")
        assert os.path.getsize(info.value.path()) > 100
        screenshot(page, "run-with-token")
