"""Entrypoint of runyard job images: ``tini -> this -> python -m targets.launch -> the script``.

The launcher records every final status itself, including "out of memory" when the kernel's
OOM killer stops the script (the usual victim: the largest process in the container). This
parent exists for the one case the launcher cannot report: its own death. It imports nothing
heavy until then, so under a memory limit it is the smallest process and the last the kernel
picks. When the launcher dies without a final status, it stops what is left of the job and
records Failed ("out of memory" with the limit when the container's cgroup counted an OOM kill),
or Canceled when a cancel was requested.

It also finds the container's id (Docker bind-mounts /etc/hostname and friends from
``<data-root>/containers/<id>/``) so the run's details name the container.
"""
import json
import os
import re
import signal
import subprocess
import sys

NODE_INFO = "RUNYARD_NODE_INFO"


def _container_id():
    try:
        with open("/proc/self/mountinfo") as fh:
            match = re.search(r"/containers/([0-9a-f]{64})/", fh.read())
    except OSError:
        return None
    return match.group(1) if match else None


def _kill_everything_else():
    """The launcher is gone: stop the job's leftovers (this is a container; they are all ours)."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in (1, me):
            try:
                os.kill(int(name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _stand_in(run_id, launcher_code):
    """Record a final status if the launcher could not (imports the store only now)."""
    from targets.launch import cgroup_memory, out_of_memory_details
    from tracking import config
    from tracking.records import RunRecords
    from tracking.status import RunStatus

    if launcher_code < 0:
        _kill_everything_else()
    settings = config.resolve_store()
    records = RunRecords(settings.open())
    if records.recorded_status(run_id)[0].is_terminal():
        return
    how = (f"signal {signal.Signals(-launcher_code).name}" if launcher_code < 0
           else f"exit code {launcher_code}")
    memory = cgroup_memory()
    if memory["oom_kills"]:  # a fresh container cgroup starts at 0
        details = out_of_memory_details(memory["limit"], "the job's launcher")
        status = RunStatus.FAILED
    elif records.cancel_requested(run_id):
        status, details = RunStatus.CANCELED, {"reason": "canceled by request"}
    else:
        status = RunStatus.FAILED
        details = {"error": {"message": f"the launcher ended ({how}) without recording a final "
                                        "status; see the container's output above",
                             "code": "LauncherLost"}}
    details["node"] = json.loads(os.environ.get(NODE_INFO) or "{}")
    records.write_status(run_id, status, details)


def main(argv):
    node = json.loads(os.environ.get(NODE_INFO) or "{}")
    node["container_id"] = node.get("container_id") or _container_id()
    os.environ[NODE_INFO] = json.dumps(node)
    launcher = subprocess.Popen([sys.executable, "-m", "targets.launch", *argv])

    def forward(signum, _frame):  # `docker stop` signals tini, tini signals us
        launcher.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = launcher.wait()
    if code != 0 and "--run-id" in argv:
        try:
            _stand_in(argv[argv.index("--run-id") + 1], code)
        except Exception as exc:  # noqa: BLE001 - last resort; the output stays in `docker logs`
            print(f"runyard entrypoint: could not record the final status: {exc!r}", file=sys.stderr)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
