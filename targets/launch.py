"""The in-job launcher (supervisor): ``python -m targets.launch --run-id ID``.

Every target starts this wherever the job runs. It needs only the store (``RUNYARD_STORE`` and
``RUNYARD_STORAGE_OPTIONS`` in its environment) and the run id; the run record says the rest.

1. Preparing: materialise the snapshot (blobs cached per machine), resolve the interpreter
   (a cached virtualenv when the environment is not user-managed).
2. Starting/Running: start the script as a child in its own process group, with the run's
   identity and ``RUNYARD_SPOOL_DIR`` in its environment; stream stdout+stderr to the store in
   chunks (at least once a second), heartbeat, ship the script's metric spool, watch for a
   cancel request and for ``max_run_duration_seconds``.
3. Finalizing: ship what is left, upload ./outputs and ./logs, compact metrics, then set the final
   status from the exit code (Completed / Failed with exit code, signal, stderr tail / Canceled).

Status is the launcher's job, never the script's: a SIGKILLed script still ends Failed with the
metrics and output it produced until the kill.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from tracking import config
from tracking.errors import StoreError
from tracking.records import RunRecords
from tracking.status import RunStatus

from .environments import resolve_interpreter
from .logstream import LogStreamer

ENV_NODE_INFO = "RUNYARD_NODE_INFO"  # JSON set by a target (e.g. Ray node id and address)
TICK = 0.2


class Launcher:
    """Supervises one run. ``run()`` returns the exit code the launcher process should use.

    Args:
        records: the store holding the run.
        run_id: the run to launch.
        workdir: where the snapshot goes (default: a temporary folder, removed at the end).
        extra_env: variables for the script on top of this process's environment (a launcher
            running inside a long-lived process, the Ray target's, gets the job's here); its
            ``RUNYARD_HEARTBEAT_INTERVAL`` / ``RUNYARD_CANCEL_GRACE`` apply to the launcher too.
        node_info: where it runs, recorded with every status (default: ``RUNYARD_NODE_INFO``).
        echo: copy the script's output to this process's stdout/stderr (``docker logs``).
    """

    def __init__(self, records: RunRecords, run_id: str, workdir: str | None = None,
                 extra_env: dict[str, str] | None = None, node_info: dict[str, Any] | None = None,
                 echo: bool = True):
        self.records, self.run_id = records, run_id
        self.record = records.read_run(run_id)
        self.extra_env = dict(extra_env or {})
        self.settings = {**os.environ, **self.extra_env}
        if node_info is None:
            node_info = json.loads(os.environ.get(ENV_NODE_INFO) or "{}")
        self.node = {"host": socket.gethostname(), "launcher_pid": os.getpid(), **node_info}
        self.workdir = workdir or tempfile.mkdtemp(prefix=f"runyard-job-{run_id}-")
        self.spool_dir = tempfile.mkdtemp(prefix=f"runyard-spool-{run_id}-")
        self.logs = LogStreamer(records, run_id, echo=echo)
        # A target that restarts a lost job (Ray's max_retries) starts a new launcher on the same
        # run: each start is one attempt, recorded on every status it writes.
        self.attempt = 1 + records.launcher_starts(records.status_events(run_id))
        self.cancel_event = threading.Event()
        self._stop = threading.Event()
        self.child: subprocess.Popen | None = None
        self.shipper = None
        self.reason: str | None = None
        self.oom_kills_before: int | None = None

    # ------------------------------------------------------------- status
    def _status(self, status: RunStatus, **details: Any) -> None:
        try:
            self.records.write_status(self.run_id, status, {"attempt": self.attempt, **details})
        except StoreError as exc:
            print(f"runyard launcher: could not record {status.value}: {exc}", file=sys.stderr)

    def _heartbeat_loop(self) -> None:
        interval, last_beat = config.heartbeat_interval(self.settings), 0.0
        while not self._stop.wait(min(1.0, interval)):
            try:
                if time.monotonic() - last_beat >= interval:
                    self.records.write_heartbeat(self.run_id, {"node": self.node})
                    last_beat = time.monotonic()
                if self.records.cancel_requested(self.run_id):
                    self.cancel_event.set()
            except StoreError:
                pass  # the store may come back; the heartbeat timeout covers a long outage

    # ---------------------------------------------------------------- run
    def run(self) -> int:
        threading.Thread(target=self._heartbeat_loop, daemon=True, name="heartbeat").start()
        self.records.write_heartbeat(self.run_id, {"node": self.node})
        self._status(RunStatus.PREPARING, node=self.node)
        try:
            argv, env = self._prepare()
        except Exception as exc:  # noqa: BLE001 - any preparation error fails the run, visibly
            self.logs.write(f"runyard: preparing the job failed: {exc}\n".encode())
            self.logs.flush()
            self._finish(RunStatus.FAILED, {"error": {"message": f"preparation failed: {exc}",
                                                      "code": "PreparationFailed"}})
            return 1
        if self.cancel_event.is_set():
            self._finish(RunStatus.CANCELED, {"reason": "canceled before start"})
            return 130
        self._status(RunStatus.STARTING, node=self.node)
        code = self._supervise(argv, env)
        return code

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        from tracking.snapshots import restore
        if self.record.get("snapshot_id"):
            restore(self.records.store, self.record["snapshot_id"], self.workdir)
        for sub in ("outputs", "logs"):
            os.makedirs(os.path.join(self.workdir, sub), exist_ok=True)
        environment = self.record.get("environment") or {}
        python = resolve_interpreter(environment, log=self.logs)
        command = self.record.get("command")
        if self.record.get("module"):  # runyard's own jobs (the sweep controller): python -m
            argv = [python, "-u", "-m", self.record["module"], *self.record.get("arguments", [])]
        elif command:
            argv = command if isinstance(command, list) else ["/bin/sh", "-c", command]
        else:
            script = self.record.get("script")
            if not script or not os.path.isfile(os.path.join(self.workdir, script)):
                raise FileNotFoundError(f"script {script!r} is not in the snapshot")
            argv = [python, "-u", script, *self.record.get("arguments", [])]
        env = {**os.environ, **{k: str(v) for k, v in (environment.get("environment_variables") or {}).items()},
               **self.extra_env, config.ENV_SPOOL_DIR: self.spool_dir, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": _with_runyard_on_path(os.environ.get("PYTHONPATH"))}
        env.pop(ENV_NODE_INFO, None)
        return argv, env

    def _supervise(self, argv: list[str], env: dict[str, str]) -> int:
        self.oom_kills_before = cgroup_memory()["oom_kills"]
        self.child = subprocess.Popen(argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      start_new_session=True, preexec_fn=_die_with_parent_hook())
        pgid = os.getpgid(self.child.pid)
        self.logs.attach(self.child.stdout, self.child.stderr)
        self._status(RunStatus.RUNNING, pid=self.child.pid, pgid=pgid, node=self.node)
        from tracking.writer import SpoolShipper
        self.shipper = SpoolShipper(self.spool_dir, self.records, self.run_id)
        limit = self.record.get("max_run_duration_seconds")
        started = last_flush = time.monotonic()
        while self.child.poll() is None:
            # the first output goes out as soon as it arrives, later chunks at most every TICK
            self.logs.arrived.wait(TICK)
            if self.logs.chunks_written and time.monotonic() - last_flush < TICK:
                time.sleep(TICK - (time.monotonic() - last_flush))
            self.logs.arrived.clear()
            self.logs.flush()
            last_flush = time.monotonic()
            self.shipper.ship()
            if self.cancel_event.is_set() and self.reason is None:
                self.reason = "canceled"
                self._kill_group(pgid)
            elif limit and time.monotonic() - started > limit and self.reason is None:
                self.reason = "timeout"
                self.logs.write(f"\nrunyard: max_run_duration_seconds={limit} exceeded; stopping\n".encode())
                self._kill_group(pgid)
        self._wait_group_gone(pgid)
        self.logs.close()
        return self._finalize(self.child.returncode)

    def _kill_group(self, pgid: int) -> None:
        """SIGTERM the job's process group, then SIGKILL after the grace period."""
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + config.cancel_grace(self.settings)
        while time.monotonic() < deadline and self.child.poll() is None:
            time.sleep(0.05)
            self.logs.flush()
        self._signal_group(pgid, signal.SIGKILL)

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass

    def _wait_group_gone(self, pgid: int) -> None:
        """Processes the script left behind in its group are stopped too, before the status."""
        deadline = time.monotonic() + config.cancel_grace(self.settings)
        while True:
            if os.getpid() == 1:  # as PID 1 in a container, orphans are ours to reap
                _reap_orphans()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            if time.monotonic() > deadline + 5:
                return  # only unkillable (D-state) or zombie processes left: stop waiting
            if time.monotonic() > deadline:
                self._signal_group(pgid, signal.SIGKILL)
            elif self.reason is None:
                self._signal_group(pgid, signal.SIGTERM)
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the script's process group and stop the heartbeat; records nothing. For a
        host process that outlives this launcher (a Ray worker) when the launcher fails."""
        self._stop.set()
        if self.child is not None:
            self._signal_group(self.child.pid, signal.SIGKILL)  # its own session: pgid == pid
            self.child.wait()

    def abort(self) -> None:
        """Stop now: the process hosting this launcher is being interrupted (a Ray task's
        ``ray.cancel``). SIGKILL the script's group, ship what it logged and record Canceled,
        unless a final status is already there. Best effort: the host may be killed next."""
        self.kill()
        self.reason = "canceled"
        try:
            if self.shipper is not None:
                self.shipper.ship(force=True)
            if self.records.recorded_status(self.run_id)[0].is_terminal():
                return
        except StoreError:
            pass
        self._finish(RunStatus.CANCELED, {"exit_code": self.child.returncode if self.child else None,
                                          "reason": "canceled by request (task interrupted)"})

    # ------------------------------------------------------------ finish
    def _finalize(self, returncode: int) -> int:
        self._status(RunStatus.FINALIZING)
        deadline = time.monotonic() + 120
        while self.shipper.ship(force=True) and time.monotonic() < deadline:
            time.sleep(0.5)  # store outage: keep the spool and retry, nothing is dropped
        self._upload_folder("outputs")
        self._upload_folder("logs")
        status, details = self._final_status(returncode)
        self._finish(status, details)
        return 0 if status is RunStatus.COMPLETED else (returncode if returncode > 0 else 1)

    def _final_status(self, code: int) -> tuple[RunStatus, dict[str, Any]]:
        tail = self.logs.stderr_tail()
        if self.reason == "canceled":
            return RunStatus.CANCELED, {"exit_code": code, "reason": "canceled by request"}
        if self.reason == "timeout":
            return RunStatus.FAILED, {"exit_code": code, "error": {
                "message": "max_run_duration_seconds exceeded", "code": "Timeout", "stderr_tail": tail}}
        memory = cgroup_memory()
        if code != 0 and (memory["oom_kills"] or 0) > (self.oom_kills_before or 0):
            details = out_of_memory_details(memory["limit"], "the script")
            details["error"]["stderr_tail"] = tail
            if code < 0:
                details["signal"] = signal.Signals(-code).name
            return RunStatus.FAILED, {"exit_code": code, **details}
        if code == 0:
            failed = _script_failure(self.records, self.run_id)
            if failed:
                return RunStatus.FAILED, {"exit_code": 0, "error": {**failed, "code": "ScriptFailed"}}
            return RunStatus.COMPLETED, {"exit_code": 0}
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (killed; out of memory is a common cause)" if -code == signal.SIGKILL else ""
            return RunStatus.FAILED, {"exit_code": code, "signal": name, "error": {
                "message": f"script killed by {name}{hint}", "code": "Killed", "stderr_tail": tail}}
        return RunStatus.FAILED, {"exit_code": code, "error": {
            "message": f"script exited with code {code}", "code": "NonZeroExit", "stderr_tail": tail}}

    def _upload_folder(self, name: str) -> None:
        folder = os.path.join(self.workdir, name)
        for root, _dirs, files in os.walk(folder):
            for fname in files:
                path = os.path.join(root, fname)
                rel = os.path.relpath(path, self.workdir).replace(os.sep, "/")
                try:
                    self.records.store.put_file(self.records.file_key(self.run_id, rel), path)
                except (StoreError, OSError) as exc:
                    self.logs.write(f"runyard: could not upload {rel}: {exc}\n".encode())

    def _finish(self, status: RunStatus, details: dict[str, Any]) -> None:
        from tracking.metric_store import compact_metrics
        self.logs.close()
        try:
            self.records.store.put_bytes(self.records.file_key(self.run_id, "user_logs/std_log.txt"),
                                         self.logs.full_text())
            compact_metrics(self.records, self.run_id)
        except (StoreError, OSError) as exc:
            print(f"runyard launcher: finalizing {self.run_id}: {exc}", file=sys.stderr)
        self._stop.set()
        self._status(status, node=self.node, **details)
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        if not os.environ.get("RUNYARD_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def _die_with_parent_hook():
    """``preexec_fn``: the script gets SIGKILL if this launcher dies (node lost, launcher killed),
    so no script runs unsupervised next to a retried attempt. prctl is resolved before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _reap_orphans() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _script_failure(records: RunRecords, run_id: str) -> dict | None:
    for event in reversed(records.read_events(run_id)):
        if "script_failed" in event:
            return event["script_failed"]
    return None


def cgroup_memory() -> dict[str, int | None]:
    """OOM kills so far and memory limit (bytes) of this process's memory cgroup, None if unknown.

    cgroup v2 (``memory.events``, ``memory.max``) or v1 (``memory.oom_control``,
    ``memory.limit_in_bytes``); a container sees its own cgroup at the root of the mount.
    """
    try:
        with open("/proc/self/cgroup") as fh:
            own = {c or "v2": p for _, c, p in (ln.rstrip("\n").split(":", 2) for ln in fh)}
    except (OSError, ValueError):
        own = {}
    for root, key, events, limit in (("/sys/fs/cgroup", "v2", "memory.events", "memory.max"),
                                     ("/sys/fs/cgroup/memory", "memory", "memory.oom_control",
                                      "memory.limit_in_bytes")):
        for folder in dict.fromkeys((root + own.get(key, "/"), root)):
            try:
                with open(os.path.join(folder, events)) as fh:
                    kills = int(dict(ln.split() for ln in fh if ln.count(" ") == 1)["oom_kill"])
                with open(os.path.join(folder, limit)) as fh:
                    value = fh.read().strip()
            except (OSError, KeyError, ValueError):
                continue
            return {"oom_kills": kills,
                    "limit": int(value) if value.isdigit() and int(value) < 2 ** 60 else None}
    return {"oom_kills": None, "limit": None}


def out_of_memory_details(limit: int | None, victim: str) -> dict[str, Any]:
    """Final-status details of a job stopped by the OOM killer (also used by container entrypoints)."""
    text = f"{limit / 2 ** 20:.0f} MiB" if limit else "no limit set"
    return {"reason": "out of memory", "memory_limit": text,
            "error": {"message": f"out of memory: the kernel's OOM killer stopped {victim} "
                                 f"(memory limit {text})", "code": "OutOfMemory"}}


def _with_runyard_on_path(current: str | None) -> str:
    """The script imports ``tracking``: make sure the launcher's own copy is importable."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = [here] + ([p for p in current.split(os.pathsep) if p] if current else [])
    return os.pathsep.join(dict.fromkeys(parts))


def _with_store_retries(make: Any, patience_s: float = 300.0) -> Any:
    """A launcher that starts while the store is unreachable waits for it (up to 5 minutes)
    instead of dying and leaving its run Queued forever."""
    from tracking.errors import StoreUnavailableError
    deadline, delay = time.monotonic() + patience_s, 1.0
    while True:
        try:
            return make()
        except StoreUnavailableError as exc:
            if time.monotonic() > deadline:
                raise
            print(f"runyard launcher: store unreachable, retrying in {delay:.0f} s: {exc}",
                  file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m targets.launch")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    settings = config.resolve_store()
    records = RunRecords(settings.open())
    launcher = _with_store_retries(lambda: Launcher(records, args.run_id, args.workdir))

    def terminate(_signo: int, _frame: Any) -> None:
        # `docker stop`, a deleted Kubernetes pod, a Ray cancel: stop the script like a cancel
        # request (SIGTERM, grace, SIGKILL) and record Canceled, rather than vanish mid-run.
        launcher.cancel_event.set()

    signal.signal(signal.SIGTERM, terminate)
    return launcher.run()


if __name__ == "__main__":
    sys.exit(main())
