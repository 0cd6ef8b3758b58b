"""The metric writer and its spool: delivery order, outages, exit draining."""
from __future__ import annotations

import pytest

from runner import Experiment
from tracking import Run
from tracking.errors import MetricDeliveryError, StoreUnavailableError


def test_outage_keeps_batches_in_spool_and_delivers_them_in_order(memory_ws, monkeypatch):
    exp = Experiment(memory_ws, "outage")
    run = exp.start_logging()
    store = memory_ws.store
    real_put_file = store.put_file
    down = {"on": True}

    def flaky(key, path):
        if down["on"]:
            raise StoreUnavailableError("simulated outage", url=store.url, key=key)
        return real_put_file(key, path)

    monkeypatch.setattr(store, "put_file", flaky)
    for i in range(300):
        run.log("x", i)
        if i % 100 == 99:
            run._writer.flush_now()  # one spool file per 100 points
    with pytest.raises(MetricDeliveryError) as info:
        run.flush(timeout_seconds=0.5)
    assert info.value.pending_files
    down["on"] = False
    run.flush(timeout_seconds=10)
    assert Run(exp, run.id).get_metrics()["x"] == list(range(300))
    run.complete()
    assert Run(exp, run.id).get_metrics()["x"] == list(range(300))


def test_log_is_cheap_and_nonblocking(memory_ws):
    import time
    run = Experiment(memory_ws, "speed").start_logging()
    start = time.perf_counter()
    for i in range(200_000):
        run.log("x", 0.5)
    elapsed = time.perf_counter() - start
    run.complete()
    # generous bound for a loaded CI machine; the benchmark measures the real rate
    assert elapsed < 2.0
    assert len(Run(run.experiment, run.id).get_metrics()["x"]) == 200_000
