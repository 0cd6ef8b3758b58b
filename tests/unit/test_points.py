"""The pyarrow-free side of metrics: JSON spool batches, their summaries, and the light import."""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import pytest

from tracking.metrics import encode_batch, summarize
from tracking.points import (JSON_KINDS, decode_json_batch, encode_json_batch, merge_summaries,
                             summarize_records)
from tracking.records import RunRecords
from tracking.store import Store
from tracking.writer import MetricWriter, SpoolShipper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _random_records(rng: random.Random, n: int, t0: float) -> list[tuple]:
    """Every kind of point the Run API appends, with the awkward values."""
    names = ["loss", "acc", "train/loss", "flag", "label", "big", "mixed", "lst", "tbl", "cm"]
    specials = [math.nan, math.inf, -math.inf, 0.0, -1e308, 1e-308]
    out = []
    for i in range(n):
        name = rng.choice(names)
        step = rng.choice([None, rng.randrange(0, 50)])
        t = t0 + i * 0.001 + rng.choice([0, 0, -0.0005])  # a few out-of-order times
        if name in ("loss", "train/loss"):
            out.append((name, rng.choice(specials) if rng.random() < 0.2 else rng.random(), step, t))
        elif name == "acc":
            out.append((name, rng.randrange(-5, 5), step, t))
        elif name == "flag":
            out.append((name, rng.random() < 0.5, step, t, "scalar", None))
        elif name == "label":
            out.append((name, rng.choice(["a", "b", "é", ""]), step, t, "scalar", "desc"))
        elif name == "big":
            out.append((name, rng.choice([2 ** 64, -(2 ** 70), 10 ** 400, 7]), step, t, "scalar", None))
        elif name == "mixed":
            out.append((name, rng.choice([1.5, 3, "x", math.nan]), step, t, "scalar", None))
        elif name == "lst":
            out.append((name, rng.random(), i % 4, t, "list", None))
        elif name == "tbl":
            out.append((name, json.dumps({"a": [1, 2], "b": ["x", None]}), None, t, "table", None))
        else:
            out.append((name, json.dumps({"data": [[1, 2], [3, 4]]}), None, t, JSON_KINDS[0], None))
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("seed", range(5))
def test_json_summary_matches_the_columnar_summary(seed):
    rng = random.Random(seed)
    py, arrow, seq = None, None, 0
    for batch_no in range(3):
        records = _random_records(rng, rng.randrange(1, 400), 1.7e9 + batch_no)
        py = summarize_records(records, py)
        arrow = summarize(encode_batch(records, seq), arrow)
        seq += len(records)
    assert py.keys() == arrow.keys()
    for name in py:
        for field in ("count", "min", "max", "kind", "last", "last_step", "last_time"):
            assert _same(py[name][field], arrow[name][field]), (name, field, py[name], arrow[name])


def test_all_nan_series_summarises_as_nan_and_folds_with_later_values():
    first = summarize_records([("x", math.nan, None, 1.0), ("x", math.nan, None, 2.0)])
    assert math.isnan(first["x"]["min"]) and math.isnan(first["x"]["max"])
    later = summarize_records([("x", 3.0, 5, 3.0)], first)
    assert (later["x"]["min"], later["x"]["max"], later["x"]["count"]) == (3.0, 3.0, 3)
    assert merge_summaries([first, {"y": {"count": 1}}]).keys() == {"x", "y"}


def test_json_batch_round_trips_every_value_exactly():
    records = [("a/b", math.inf, None, 1.5), ("a/b", -math.inf, 3, 1.6), ("n", math.nan, None, 2.0),
               ("big", 10 ** 400, None, 3.0, "scalar", None), ("flag", True, 1, 4.0, "scalar", "d"),
               ("s", "é\n\"", None, 5.0, "scalar", None), ("f", 0.1 + 0.2, None, 6.0)]
    back, seq = decode_json_batch(encode_json_batch(records, 41))
    assert seq == 41
    assert len(back) == len(records)
    for got, want in zip(back, records):
        assert all(_same(g, w) for g, w in zip(got, want)), (got, want)


def test_job_writer_spools_json_and_the_shipper_stores_parquet_in_order(tmp_path):
    """Small batches go as JSON, a large one as Parquet; shipped, they read back as one series."""
    store = Store(f"file://{tmp_path}/store")
    records = RunRecords(store)
    records.create_run({"run_id": "r1", "experiment": "e", "created": 0.0})
    spool = str(tmp_path / "spool")
    writer = MetricWriter(spool, "w1", ship=None, interval=60, json_rows=100)
    values = []
    for size in (3, 250, 7):  # JSON, Parquet, JSON
        for _ in range(size):
            values.append(len(values) * 0.5)
            writer.append(("loss", values[-1], None, 1.7e9 + len(values)))
        writer.flush_now()
    writer.append(("big", 2 ** 80, None, 2e9, "scalar", None))
    writer.close()
    spooled = sorted(os.listdir(spool))
    assert [n.split(".", 1)[1] for n in spooled if not n.startswith("summary-")] == \
        ["points.json", "parquet", "points.json", "points.json"]
    assert SpoolShipper(spool, records, "r1").ship(force=True) == 0
    stored = sorted(os.path.basename(k) for k in store.list(records.run_key("r1", "metrics")))
    assert stored == [f"w1-{i:010d}.parquet" for i in range(4)]
    from tracking.metric_store import get_metrics, read_summary
    metrics = get_metrics(records, "r1")
    assert metrics["loss"] == values
    assert metrics["big"] == 2 ** 80
    assert read_summary(records, "r1")["loss"]["count"] == 260


def test_a_job_script_that_logs_imports_neither_pyarrow_nor_fsspec(tmp_path):
    """The import budget of the in-job path: what makes a short job cheap on a busy node."""
    spool = tmp_path / "spool"
    code = ("import sys\nfrom tracking import Run\nrun = Run.get_context()\n"
            "run.log('accuracy', 0.9)\nrun.log_list('l', [1, 2])\nrun.log_row('r', a=1)\n"
            "run.flush()\n"
            "heavy = sorted(m for m in ('pyarrow', 'fsspec', 'pandas', 'numpy') if m in sys.modules)\n"
            "print(','.join(heavy) or 'none')\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "RUNYARD_RUN_ID": "job_1_abc",
           "RUNYARD_STORE": f"file://{tmp_path}/store", "RUNYARD_SPOOL_DIR": str(spool)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"
    batch = next(n for n in os.listdir(spool) if n.endswith(".points.json"))
    records, _ = decode_json_batch((spool / batch).read_bytes())
    assert [r[0] for r in records] == ["accuracy", "l", "l", "r"]


def test_ints_beyond_float_range_are_logged_and_read_back_exactly(memory_ws):
    """10**400 has no float64 approximation: its summary min/max are +/-inf, its value exact."""
    from runner import Experiment
    from tracking import Run
    run = Experiment(memory_ws, "huge").start_logging()
    run.log("huge", 10 ** 400)
    run.log("huge", -(10 ** 400))
    run.complete()
    back = Run(run.experiment, run.id)
    assert back.get_metrics()["huge"] == [10 ** 400, -(10 ** 400)]
    summary = back.get_metrics_summary()["huge"]
    assert (summary["min"], summary["max"], summary["last"]) == (-math.inf, math.inf, -(10 ** 400))


def test_a_damaged_spool_file_is_set_aside_and_the_rest_still_ships(tmp_path):
    """A launcher must not die on a spool file it cannot read (e.g. written by hand)."""
    store = Store(f"file://{tmp_path}/store")
    records = RunRecords(store)
    records.create_run({"run_id": "r1", "experiment": "e", "created": 0.0})
    spool = tmp_path / "spool"
    writer = MetricWriter(str(spool), "w1", ship=None, interval=60, json_rows=100)
    writer.append(("loss", 1.0, None, 1.0))
    writer.flush_now()
    (spool / "w1-0000000001.points.json").write_bytes(b'{"seq": 1, "records": [["loss"')
    writer.append(("loss", 3.0, None, 3.0))
    writer._batch_no = 2  # noqa: SLF001 - the next batch after the damaged one
    writer.close()
    assert SpoolShipper(str(spool), records, "r1").ship(force=True) == 0
    assert (spool / "w1-0000000001.points.json.bad").exists()
    from tracking.metric_store import get_metrics
    assert get_metrics(records, "r1")["loss"] == [1.0, 3.0]
