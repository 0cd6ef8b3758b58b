"""``RunDetails(run).show()`` in a real Jupyter kernel, executed with nbclient.

The notebook starts a run, shows the widget while the run is Running, completes the run in a
later cell and waits for the widget; the stored widget state (what a notebook viewer renders)
must show the status reaching Completed, the metric chart and the log tail.
"""
from __future__ import annotations

import json
import os
import sys

import pytest

from tests.support import services

pytestmark = pytest.mark.slow


def _kernel_name() -> str:
    """The venv's own ``python3`` kernelspec (installed into sys.prefix when missing)."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError as exc:
        services.require("jupyter", f"jupyter_client missing ({exc})")
    manager = KernelSpecManager()
    spec_dir = os.path.join(sys.prefix, "share", "jupyter", "kernels", "python3")
    if not os.path.isdir(spec_dir):
        from ipykernel.kernelspec import install
        install(prefix=sys.prefix)
    spec = manager.get_kernel_spec("python3")
    if not os.path.realpath(spec.argv[0]).startswith(os.path.realpath(sys.prefix)) and \
            spec.argv[0] not in ("python", "python3", sys.executable):
        pytest.fail(f"kernel python3 runs {spec.argv[0]}, not this venv's {sys.executable}")
    return "python3"


def _cells(store_url: str, root: str) -> list[str]:
    return [
        f"""
import sys, os
sys.path.insert(0, {root!r})
os.environ["RUNYARD_QUIET"] = "1"
os.environ["RUNYARD_FLUSH_INTERVAL"] = "0.2"
from runner import Workspace, Experiment
from tracking.records import RunRecords
ws = Workspace(store={store_url!r})
run = Experiment(ws, "notebook").start_logging()
for i in range(10):
    run.log("accuracy", i / 10)
RunRecords(ws.store).put_log_chunk(run.id, "driver", 0, b"epoch 1 <done>\\n")
run.flush()
""",
        """
from tracking.widgets import RunDetails
details = RunDetails(run, refresh_interval=0.3)
widget = details.show()
print("shown while", details.status)
""",
        """
RunRecords(ws.store).put_log_chunk(run.id, "driver", 1, b"training finished\\n")
run.log("accuracy", 1.0)
run.complete()
print("widget saw", details.wait(timeout=60))
""",
    ]


def test_run_details_widget_reaches_completed(tmp_path):
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as exc:
        services.require("nbclient", f"nbclient/nbformat missing ({exc}); pip install -e '.[test]'")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code) for code in _cells(f"file://{tmp_path}/store", root)]
    client = NotebookClient(notebook, kernel_name=_kernel_name(), timeout=180,
                            resources={"metadata": {"path": str(tmp_path)}}, store_widget_state=True)
    client.execute()
    nbformat.write(notebook, str(tmp_path / "widget.ipynb"))

    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "shown while Running" in text and "widget saw Completed" in text
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1, outputs
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    html_values = [m["state"].get("value", "") for m in state.values()
                   if m.get("model_name") == "HTMLModel"]
    shown = "\n".join(html_values)
    assert "data-status='Completed'" in shown, shown[:2000]
    assert "accuracy (11 points)" in shown           # the chart caught the last point
    assert "training finished" in shown and "epoch 1 &lt;done&gt;" in shown
    assert json.dumps(state)  # the state is plain JSON a notebook viewer can render
