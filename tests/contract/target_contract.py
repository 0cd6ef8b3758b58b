"""The compute-target contract, as a mixin run against every target.

Subclasses provide ``target_ws`` (a Workspace whose store the target's jobs can reach) and
``target`` (the target object, or its name).
"""
from __future__ import annotations

import time

from runner import Experiment, ScriptRunConfig

from tests.support.projects import write_project

JOB = """
import sys, time
from tracking import Run
run = Run.get_context()
run.log("arg", float(sys.argv[1]))
print("hello from the job", flush=True)
code = int(sys.argv[2])
if code == 99:
    time.sleep(300)
sys.exit(code)
"""


class TargetContract:
    timeout = 180

    def _submit(self, target_ws, target, tmp_path, *args):
        folder = write_project(tmp_path / "job", {"job.py": JOB})
        config = ScriptRunConfig(source_directory=folder, script="job.py", arguments=list(args),
                                 compute_target=target)
        return Experiment(target_ws, "contract").submit(config)

    def test_completed_run_reports_metrics_and_output(self, target_ws, target, tmp_path):
        run = self._submit(target_ws, target, tmp_path, 0.5, 0)
        details = run.wait_for_completion(timeout=self.timeout)
        assert details["status"] == "Completed" and details["exit_code"] == 0
        assert run.get_metrics() == {"arg": 0.5}
        assert "hello from the job" in run.get_log_text()

    def test_nonzero_exit_is_failed_with_exit_code(self, target_ws, target, tmp_path):
        run = self._submit(target_ws, target, tmp_path, 1.0, 2)
        details = run.wait_for_completion(timeout=self.timeout, raise_on_error=False)
        assert details["status"] == "Failed" and details["exit_code"] == 2
        assert run.get_metrics() == {"arg": 1.0}

    def test_cancel_ends_canceled(self, target_ws, target, tmp_path):
        run = self._submit(target_ws, target, tmp_path, 2.0, 99)
        deadline = time.time() + self.timeout
        while "hello from the job" not in run.get_log_text() and time.time() < deadline:
            time.sleep(0.2)
        run.cancel()
        assert run.get_status() == "Canceled"
