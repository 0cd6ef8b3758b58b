"""The runyard CLI: readable tables, --json, meaningful exit codes."""
from __future__ import annotations

import json

from click.testing import CliRunner

from runner import Experiment, Workspace
from runner.cli import main


def _seeded(tmp_path):
    ws = Workspace(store=str(tmp_path / "store"))
    run = Experiment(ws, "train-in-notebook").start_logging()
    run.log("alpha", 0.03)
    for v in (3.0, 2.0):
        run.log("mse", v)
    f = tmp_path / "m.pkl"
    f.write_bytes(b"m")
    run.upload_file("outputs/model.pkl", str(f))
    run.complete()
    return ws, run


def test_listing_show_metrics_download(tmp_path):
    ws, run = _seeded(tmp_path)
    cli = CliRunner()
    store = ["--store", ws.url]
    res = cli.invoke(main, ["experiments", *store])
    assert res.exit_code == 0 and "train-in-notebook" in res.output
    res = cli.invoke(main, ["runs", *store, "--json"])
    rows = json.loads(res.output)
    assert rows[0]["run_id"] == run.id and rows[0]["status"] == "Completed"
    res = cli.invoke(main, ["runs", *store, "--status", "Failed"])
    assert res.exit_code == 0 and "(none)" in res.output
    res = cli.invoke(main, ["show", run.id, *store])
    assert res.exit_code == 0 and "mse" in res.output and "outputs/model.pkl" in res.output
    res = cli.invoke(main, ["metrics", run.id, *store, "--name", "mse"])
    assert json.loads(res.output) == {"mse": [3.0, 2.0]}
    res = cli.invoke(main, ["metrics", run.id, *store, "--csv"])
    assert res.output.splitlines()[0] == "name,kind,step,time,value" and len(res.output.splitlines()) == 4
    res = cli.invoke(main, ["download", run.id, str(tmp_path / "dl"), *store, "--prefix", "outputs"])
    assert res.exit_code == 0 and (tmp_path / "dl" / "outputs" / "model.pkl").read_bytes() == b"m"


def test_exit_codes(tmp_path):
    ws, run = _seeded(tmp_path)
    cli = CliRunner()
    res = cli.invoke(main, ["show", "missing_1", "--store", ws.url])
    assert res.exit_code == 3 and "not found" in res.output
    res = cli.invoke(main, ["show", "../../etc", "--store", ws.url])
    assert res.exit_code == 2
    res = cli.invoke(main, ["metrics", run.id, "--store", ws.url, "--name", "nope"])
    assert res.exit_code == 3 and "alpha" in res.output
