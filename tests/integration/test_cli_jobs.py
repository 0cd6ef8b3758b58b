"""runyard submit / logs / cancel / rerun / snapshot download, as a user runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.support.projects import write_project

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(*args, cwd, timeout=120):
    env = {**os.environ, "PYTHONPATH": ROOT, "RUNYARD_CANCEL_GRACE": "2"}
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_submit_wait_logs_rerun_snapshot(tmp_path):
    proj = write_project(tmp_path / "proj", {"train.py": """
        import sys
        from tracking import Run
        run = Run.get_context()
        run.log("lr", float(sys.argv[2]))
        print("training with", sys.argv[1:])
    """})
    store = ["--store", str(tmp_path / "store")]
    res = _cli("submit", *store, "-e", "cli", "--source", proj, "--wait", "train.py", "--", "--lr", "0.5",
               cwd=proj)
    assert res.returncode == 0, res.stderr
    assert "training with ['--lr', '0.5']" in res.stdout
    run_id = res.stdout.split()[1]
    res = _cli("logs", run_id, *store, cwd=proj)
    assert "training with" in res.stdout
    res = _cli("rerun", run_id, *store, "--wait", cwd=proj)
    assert res.returncode == 0 and "Completed" in res.stdout
    res = _cli("runs", *store, "--json", cwd=proj)
    rows = json.loads(res.stdout)
    assert len(rows) == 2 and {r["metrics"] for r in rows} == {"lr=0.5"}
    res = _cli("snapshot", "download", run_id, str(tmp_path / "snap"), *store, cwd=proj)
    assert res.returncode == 0
    assert (tmp_path / "snap" / "train.py").read_text() == open(os.path.join(proj, "train.py")).read()


def test_failed_run_exit_code_and_cancel(tmp_path):
    proj = write_project(tmp_path / "proj", {"fail.py": "import sys; sys.exit(2)",
                                            "slow.py": "import time; print('up', flush=True); time.sleep(300)"})
    store = ["--store", str(tmp_path / "store")]
    res = _cli("submit", *store, "--source", proj, "--wait", "fail.py", cwd=proj)
    assert res.returncode == 1 and "Failed" in res.stdout
    res = _cli("submit", *store, "--source", proj, "slow.py", cwd=proj)
    run_id = res.stdout.split()[1]
    deadline = time.time() + 30
    while "up" not in _cli("logs", run_id, *store, cwd=proj).stdout and time.time() < deadline:
        time.sleep(0.3)
    res = _cli("cancel", run_id, *store, cwd=proj)
    assert res.returncode == 0 and "Canceled" in res.stdout
    res = _cli("logs", run_id, *store, "--follow", cwd=proj)
    assert res.returncode == 1
    res = _cli("submit", *store, "--target", "nope", "--source", proj, "slow.py", cwd=proj)
    assert res.returncode == 5 and "known:" in res.stderr
