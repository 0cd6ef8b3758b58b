"""The azureml-core v1 Run surface, against memory:// and file:// stores."""
from __future__ import annotations

import math
import os

import pytest

from runner import Experiment
from tracking import Run
from tracking.errors import (ImmutablePropertyError, InvalidMetricValueError, InvalidNameError,
                             NoRunContextError, RunNotFoundError, RunStateError)


def test_seed_example_one_reads_back_from_a_fresh_handle(exp, tmp_path):
    run = exp.start_logging()
    run.tag("Description", "My first run!")
    run.log("alpha", 0.03)
    run.log("mse", 3424.31)
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80\x04pickled")
    run.upload_file(name="outputs/model.pkl", path_or_stream=str(model))
    run.complete()

    again = Run(exp, run.id)
    assert again.get_metrics() == {"alpha": 0.03, "mse": 3424.31}
    assert "outputs/model.pkl" in again.get_file_names()
    assert again.get_status() == "Completed"
    assert again.get_tags() == {"Description": "My first run!"}


def test_azure_shapes(exp):
    run = exp.start_logging()
    run.log("once", 1)
    for v in (0.5, 0.25, 0.125):
        run.log("series", v)
    run.log_list("accuracies", [0.6, 0.7, 0.87])
    for x in range(3):
        run.log_row("Y over X", x=x, y=x * 0.5)
    run.log_table("tbl", {"x": [1, 2, 3], "y": [0.6, 0.7, 0.89]})
    run.log("flag", True)
    run.log("label", "best")
    run.complete()
    m = Run(exp, run.id).get_metrics()
    assert m["once"] == 1 and type(m["once"]) is int
    assert m["series"] == [0.5, 0.25, 0.125]
    assert m["accuracies"] == [0.6, 0.7, 0.87]
    assert m["Y over X"] == {"x": [0, 1, 2], "y": [0.0, 0.5, 1.0]}
    assert m["tbl"] == {"x": [1, 2, 3], "y": [0.6, 0.7, 0.89]}
    assert m["flag"] is True and m["label"] == "best"
    assert Run(exp, run.id).get_metrics(name="series") == {"series": [0.5, 0.25, 0.125]}


def test_steps_out_of_order_are_kept_and_sorted(exp):
    run = exp.start_logging()
    for step in (3, 1, 2, 1):
        run.log("loss", float(step * 10), step=step)
    run.complete()
    assert Run(exp, run.id).get_metrics()["loss"] == [10.0, 10.0, 20.0, 30.0]


def test_nan_inf_and_huge_values_are_kept(exp):
    run = exp.start_logging()
    for v in (math.nan, math.inf, -math.inf, 1e308, 2 ** 80):
        run.log("v", v)
    run.complete()
    values = Run(exp, run.id).get_metrics()["v"]
    assert math.isnan(values[0]) and values[1:4] == [math.inf, -math.inf, 1e308]
    assert values[4] == 2 ** 80 and type(values[4]) is int


def test_numpy_scalars_are_accepted(exp):
    np = pytest.importorskip("numpy")
    run = exp.start_logging()
    run.log("a", np.float32(0.5))
    run.log("b", np.int64(7))
    run.complete()
    assert Run(exp, run.id).get_metrics() == {"a": 0.5, "b": 7}


@pytest.mark.parametrize("bad", [object(), [1, 2], {"a": 1}, b"bytes", "x" * (2 << 20)])
def test_unstorable_values_raise_at_the_call(exp, bad):
    run = exp.start_logging()
    with pytest.raises(InvalidMetricValueError) as info:
        run.log("m", bad)
    assert "m" in str(info.value)
    run.complete()


@pytest.mark.parametrize("name", ["", "x" * 300, "bad\nname", None])
def test_bad_metric_names_raise(exp, name):
    run = exp.start_logging()
    with pytest.raises(InvalidNameError):
        run.log(name, 1.0)
    run.complete()


def test_metric_names_with_slashes_are_data(exp):
    run = exp.start_logging()
    run.log("train/loss", 1.0)
    run.log("../../etc/x", 2.0)
    run.complete()
    assert Run(exp, run.id).get_metrics() == {"train/loss": 1.0, "../../etc/x": 2.0}


def test_log_image_matplotlib_figure_and_file(exp, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.figure()
    plt.plot([0, 1], [0, 1])
    run = exp.start_logging()
    run.log_image("ROC", plot=plt)
    png = tmp_path / "a.png"
    plt.savefig(png)
    run.log_image("file image", path=str(png))
    run.complete()
    again = Run(exp, run.id)
    metrics = again.get_metrics()
    assert metrics["ROC"].startswith("images/ROC_") and metrics["ROC"] in again.get_file_names()
    downloaded = again.download_file(metrics["ROC"], str(tmp_path / "roc.png"))
    assert open(downloaded, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert metrics["file image"] in again.get_file_names()


def test_json_payload_kinds(exp):
    run = exp.start_logging()
    cm = {"schema_type": "confusion_matrix", "data": {"class_labels": ["a", "b"],
                                                      "matrix": [[3, 1], [0, 4]]}}
    run.log_confusion_matrix("cm", cm)
    run.log_accuracy_table("acc", {"schema_type": "accuracy_table", "data": {}})
    run.log_predictions("pred", {"bin_averages": [0.1]})
    run.log_residuals("res", {"counts": [1, 2]})
    with pytest.raises(InvalidMetricValueError):
        run.log_confusion_matrix("bad", {"x": object()})
    run.complete()
    m = Run(exp, run.id).get_metrics()
    assert m["cm"] == cm and m["res"] == {"counts": [1, 2]}


def test_tags_properties_names(exp):
    run = exp.start_logging()
    run.tag("selected", "yes")
    run.tag("flag")
    run.set_tags({"a": "1", "b": "2"})
    run.remove_tags(["b"])
    run.add_properties({"commit": "abc"})
    run.add_properties({"commit": "abc"})  # same value is fine
    with pytest.raises(ImmutablePropertyError):
        run.add_properties({"commit": "def"})
    run.display_name = "nice name"
    run.description = "what it does"
    again = Run(exp, run.id)
    assert again.get_tags() == {"selected": "yes", "flag": "", "a": "1"}
    assert again.get_properties() == {"commit": "abc"}
    assert again.display_name == "nice name" and again.description == "what it does"
    run.complete()


def test_child_runs_and_recursive_metrics(exp):
    parent = exp.start_logging()
    child = parent.child_run(name="fold-1")
    child.log("acc", 0.9)
    child.complete()
    parent.log("acc", 0.8)
    parent.complete()
    again = Run(exp, parent.id)
    assert [c.id for c in again.get_children()] == [child.id]
    assert again.get_metrics(recursive=True) == {parent.id: {"acc": 0.8}, child.id: {"acc": 0.9}}
    assert [r.id for r in exp.get_runs()] == [parent.id]
    assert {r.id for r in exp.get_runs(include_children=True)} == {parent.id, child.id}


def test_context_manager_records_failure_with_traceback(exp):
    with pytest.raises(ZeroDivisionError):
        with exp.start_logging() as run:
            run.log("before", 1)
            1 / 0
    details = Run(exp, run.id).get_details()
    assert details["status"] == "Failed"
    assert "ZeroDivisionError" in details["error"]["error"]["traceback"]
    assert Run(exp, run.id).get_metrics() == {"before": 1}


def test_fail_cancel_and_illegal_transitions(exp):
    run = exp.start_logging()
    run.fail(error_details="bad data")
    assert run.get_details()["error"]["error"]["message"] == "bad data"
    with pytest.raises(RunStateError):
        run.complete()
    other = exp.start_logging()
    other.cancel()
    assert other.get_status() == "Canceled"
    with pytest.raises(RunStateError):
        other.cancel()


def test_details_shape(exp):
    run = exp.start_logging()
    run.complete()
    d = run.get_details()
    for key in ("runId", "status", "startTimeUtc", "endTimeUtc", "properties", "target"):
        assert key in d
    assert d["runId"] == run.id and d["status"] == "Completed"
    assert run.get_portal_url().endswith(f"/runs/{run.id}")


def test_reattach_unknown_run(exp, ws):
    with pytest.raises(RunNotFoundError):
        Run(exp, "nope_123")
    with pytest.raises(RunNotFoundError):
        ws.get_run("nope_123")


def test_get_context_offline_records_into_default_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = Run.get_context()
    run.log("x", 1.0)
    run.complete()
    assert (tmp_path / ".runyard" / "runs" / run.id / "run.json").exists()
    assert Run.get_context() is run


def test_get_context_not_offline_explains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NoRunContextError) as info:
        Run.get_context(allow_offline=False)
    assert "start_logging" in str(info.value) and "submit" in str(info.value)


def test_start_logging_outputs_folder_uploaded_on_complete(exp, tmp_path):
    out = tmp_path / "outputs"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "a.txt").write_text("a")
    run = exp.start_logging(outputs=str(out))
    run.complete()
    assert Run(exp, run.id).get_file_names() == ["outputs/sub/a.txt"]


def test_files_upload_download(exp, tmp_path):
    run = exp.start_logging()
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.txt").write_text("x")
    (src / "d").mkdir()
    (src / "d" / "y.txt").write_text("y")
    run.upload_folder("data", str(src))
    import io
    run.upload_file("stream.bin", io.BytesIO(b"abc"))
    run.upload_files(["f1.txt"], [str(src / "x.txt")])
    run.complete()
    again = Run(exp, run.id)
    assert again.get_file_names() == ["data/d/y.txt", "data/x.txt", "f1.txt", "stream.bin"]
    dest = tmp_path / "dl"
    paths = again.download_files(prefix="data", output_directory=str(dest))
    assert sorted(os.path.relpath(p, dest) for p in paths) == ["data/d/y.txt", "data/x.txt"]
    assert (dest / "data" / "d" / "y.txt").read_text() == "y"


def test_experiment_listing(ws):
    a = Experiment(ws, "exp-a")
    a.start_logging().complete()
    Experiment(ws, "exp-b").start_logging().complete()
    assert sorted(e.name for e in Experiment.list(ws)) == ["exp-a", "exp-b"]
    assert [r.get_status() for r in a.get_runs(status="Completed")] == ["Completed"]
    assert a.get_runs(status="Failed") == []


def test_tag_filter_in_get_runs(exp):
    r1 = exp.start_logging(tags={"team": "a"})
    r1.complete()
    r2 = exp.start_logging()
    r2.tag("team", "b")
    r2.complete()
    assert [r.id for r in exp.get_runs(tags={"team": "b"})] == [r2.id]


def test_in_job_context_starts_and_spools_without_reaching_the_store(tmp_path, monkeypatch):
    """A job's script must start and log even while its store is unreachable: the launcher
    ships the spool later (here the store does not even hold the run)."""
    spool = tmp_path / "spool"
    monkeypatch.setenv("RUNYARD_RUN_ID", "job_1_abc")
    monkeypatch.setenv("RUNYARD_EXPERIMENT", "jobs")
    monkeypatch.setenv("RUNYARD_STORE", "memory://unreachable-for-this-test")
    monkeypatch.setenv("RUNYARD_SPOOL_DIR", str(spool))
    run = Run.get_context()
    assert run.id == "job_1_abc"
    run.log("loss", 0.5)
    run.flush()
    assert any(name.endswith(".points.json") for name in os.listdir(spool))
