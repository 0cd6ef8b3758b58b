"""The Docker target against plain ``docker run``, and job-image resolution: cache hit vs build.

1. submit -> first output line and submit -> completion of a trivial ``train.py`` (prints a line,
   logs a metric, exits) with ``compute_target=DockerTarget()`` on a warm image, against plain
   ``docker run --rm --init --network host`` of the same script on the same image (the docker
   CLI; first stdout line, exit). ``--reps`` interleaved pairs after one warm-up each; medians.
   "First output line" is when the submitter can read it: the store's log chunks for runyard,
   the CLI's stdout for plain docker.
2. Image resolution for an environment (``--requirements``, default scikit-learn): cache hit
   (the tag is on the engine: hash the inputs, two engine look-ups), against a fresh build of
   the same image (``nocache``; wheelhouse already on the host) and a cold build (empty
   runyard cache dir: wheelhouse repacked/downloaded too, Docker layers rebuilt).

Needs a Docker engine and an offline base image (``docker/build-base-image.sh``). With
``DOCKER_HOST`` (or the default socket) answering, it uses that engine. Otherwise, as root in a
private network namespace, it starts its own ``dockerd`` on a private socket, with a data root
kept between runs (``/var/lib/runyard-bench-docker``), as ``scripts/test.sh`` does::

    unshare --net --mount --propagation private --pid --fork --mount-proc \\
        bash -c 'ip link set lo up; .venv/bin/python benchmarks/bench_docker.py'
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _common import (REPO_ROOT, median, print_summary, private_netns_problem, ratio, scratch_dir,
                     secs, section, watch_run, time_process, MARKER, TRAIN_PY)

COMMAND = ("unshare --net --mount --propagation private --pid --fork --mount-proc "
           "bash -c 'ip link set lo up; .venv/bin/python benchmarks/bench_docker.py'")
POLL = 0.02
JOB_TIMEOUT = 120.0
BASE_IMAGE = os.environ.get("RUNYARD_TEST_BASE_IMAGE") or "runyard/python-base:bookworm"
DATA_ROOT = "/var/lib/runyard-bench-docker"


# ------------------------------------------------------------------------------ engine
@contextlib.contextmanager
def docker_engine():
    """The engine DOCKER_HOST names, else a private dockerd this process starts and stops."""
    import docker
    try:
        client = docker.from_env(version="auto")
        client.ping()
        yield client
        return
    except Exception as exc:  # noqa: BLE001 - any failure: try to start our own
        reason = exc
    problem = private_netns_problem()
    if os.geteuid() != 0 or problem or not shutil.which("dockerd"):
        sys.exit(f"no Docker engine answers ({os.environ.get('DOCKER_HOST', 'default socket')}: "
                 f"{reason}) and none can be started here ({problem or 'needs root and dockerd'}).\n"
                 f"Run: {COMMAND}")
    run_dir = tempfile.mkdtemp(prefix="runyard-bench-dockerd-")
    os.makedirs(DATA_ROOT, exist_ok=True)
    lock = open(DATA_ROOT + ".lock", "w")
    data_root = DATA_ROOT
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another benchmark holds it: a throwaway data root (cold images)
        data_root = tempfile.mkdtemp(prefix="runyard-bench-docker-data-")
    log = open(os.path.join(run_dir, "dockerd.log"), "w")
    proc = subprocess.Popen(
        ["dockerd", "--host", f"unix://{run_dir}/docker.sock", "--data-root", data_root,
         "--exec-root", f"{run_dir}/exec", "--pidfile", f"{run_dir}/dockerd.pid",
         "--bridge=none", "--iptables=false", "--ip6tables=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=())
    os.environ["DOCKER_HOST"] = f"unix://{run_dir}/docker.sock"
    try:
        client = None
        for _ in range(300):
            try:
                client = docker.from_env(version="auto")
                client.ping()
                break
            except Exception:  # noqa: BLE001 - still starting
                client = None
                time.sleep(0.1)
        if client is None:
            sys.exit(f"dockerd did not answer; see {run_dir}/dockerd.log")
        print(f"started dockerd on {os.environ['DOCKER_HOST']} (data root {data_root})")
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        lock.close()


def ensure_base_image(client) -> None:
    import docker
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        subprocess.run(["bash", os.path.join(REPO_ROOT, "docker", "build-base-image.sh"),
                        "--import-only", BASE_IMAGE], check=True)


# ------------------------------------------------------------------------------- peers
def time_plain(image: str, job_dir: str) -> dict:
    """Plain ``docker run`` of the same script in the same image (the launcher bypassed)."""
    argv = ["docker", "run", "--rm", "--init", "--network", "host", "-v", f"{job_dir}:/job",
            "-w", "/job", "--entrypoint", "/opt/runyard/venv/bin/python", image, "-u", "train.py"]
    return time_process(argv, "plain docker run", JOB_TIMEOUT)


def time_docker_target(exp, job_dir: str, target, env) -> dict:
    from runner import ScriptRunConfig
    from tracking.status import RunStatus
    t0 = time.perf_counter()
    run = exp.submit(ScriptRunConfig(source_directory=job_dir, script="train.py",
                                     compute_target=target, environment=env))
    submitted = time.perf_counter() - t0
    first, done, status = watch_run(run, t0, MARKER, JOB_TIMEOUT, POLL)
    if status is not RunStatus.COMPLETED or first is None:
        raise RuntimeError(f"run {run.id} ended {status}, marker seen: {first is not None}:\n"
                           + run.get_log_text()[-800:])
    return {"first": first, "done": done, "submit_returned": submitted}


def compare(reps: int, plain, other) -> tuple[list[dict], list[dict]]:
    plain(), other()  # warm-up: page cache, image layers, interpreter caches
    plains, others = [], []
    for i in range(reps):
        pair = [(plains, plain), (others, other)]
        for bucket, fn in (pair if i % 2 == 0 else pair[::-1]):
            bucket.append(fn())
        print(f"  rep {i + 1}: docker run first {secs(plains[-1]['first'])} done "
              f"{secs(plains[-1]['done'])} | DockerTarget first {secs(others[-1]['first'])} done "
              f"{secs(others[-1]['done'])} (submit returned {secs(others[-1]['submit_returned'])})",
              flush=True)
    return plains, others


class _NullLog:
    def write(self, data: bytes, is_err: bool = False) -> None:
        pass

    def flush(self) -> None:
        pass


def resolution_phase(client, requirements: list[str], reps: int, tmp: str) -> list[list]:
    from targets.docker.image import ImageBuilder
    builder = ImageBuilder(client)
    t = time.perf_counter()
    first = builder.resolve(BASE_IMAGE, requirements, _NullLog())
    print(f"  warm-up resolve: {'built' if first.built else 'cached'} {first.tag} in "
          f"{secs(time.perf_counter() - t)}")
    hits = [builder.resolve(BASE_IMAGE, requirements, _NullLog()).seconds for _ in range(reps)]
    print(f"  cache hit: median {secs(median(hits))} of {reps}", flush=True)
    fresh = builder.resolve(BASE_IMAGE, requirements, _NullLog(), nocache=True).seconds
    print(f"  fresh build (no Docker layer cache, host wheelhouse cached): {secs(fresh)}", flush=True)
    os.environ["RUNYARD_CACHE_DIR"] = os.path.join(tmp, "cold-cache")
    cold = builder.resolve(BASE_IMAGE, requirements, _NullLog(), nocache=True).seconds
    print(f"  cold build (empty runyard cache: wheelhouse made again, no layer cache): "
          f"{secs(cold)}", flush=True)
    label = " ".join(requirements) or "(runtime only)"
    return [[f"cache hit, {label}", secs(median(hits)), "1.00x"],
            [f"fresh build, {label} (wheelhouse cached)", secs(fresh), ratio(fresh, median(hits))],
            [f"cold build, {label}", secs(cold), ratio(cold, median(hits))]]


# -------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--requirements", nargs="*", default=["scikit-learn"],
                        help="environment for the image-resolution part")
    args = parser.parse_args()
    if private_netns_problem() is None:
        os.environ.setdefault("PIP_RETRIES", "0")  # no DNS here: go to the local index at once
    with scratch_dir("runyard-bench-docker-") as tmp, docker_engine() as client:
        os.environ.update({"RUNYARD_CACHE_DIR": os.path.join(tmp, "cache"), "RUNYARD_QUIET": "1",
                           "RUNYARD_FLUSH_INTERVAL": "0.2"})
        ensure_base_image(client)
        from runner import Environment, Experiment, Workspace
        from targets.docker import DockerTarget
        exp = Experiment(Workspace(store=f"file://{os.path.join(tmp, 'store')}"), "bench-docker")
        job_dir = os.path.join(tmp, "job")
        os.makedirs(job_dir)
        with open(os.path.join(job_dir, "train.py"), "w") as fh:
            fh.write(TRAIN_PY)
        env = Environment("bench")
        env.docker.base_image = BASE_IMAGE
        target = DockerTarget()

        section("warm image: DockerTarget vs plain docker run")
        warm = time_docker_target(exp, job_dir, target, env)
        from targets.docker.image import ImageBuilder
        image = ImageBuilder(client).plan(BASE_IMAGE, [], _NullLog()).tag
        print(f"  image {image} ready (first submission {secs(warm['done'])})")
        # plain runs record offline into ./.runyard: a copy keeps that out of the snapshot
        plain_dir = shutil.copytree(job_dir, os.path.join(tmp, "plain-job"))
        plains, targets = compare(args.reps, lambda: time_plain(image, plain_dir),
                                  lambda: time_docker_target(exp, job_dir, target, env))
        p_first, t_first = median(p["first"] for p in plains), median(t["first"] for t in targets)
        p_done, t_done = median(p["done"] for p in plains), median(t["done"] for t in targets)

        section(f"image resolution: {' '.join(args.requirements) or 'runtime only'}")
        rows = resolution_phase(client, args.requirements, args.reps, tmp)

    latency = [["submit -> first output line", secs(p_first), secs(t_first),
                f"+{secs(t_first - p_first)}", ratio(t_first, p_first)],
               ["submit -> completion", secs(p_done), secs(t_done), f"+{secs(t_done - p_done)}",
                ratio(t_done, p_done)]]
    print_summary("bench_docker: DockerTarget vs plain docker run (warm image)", COMMAND,
                  ["measure", "plain docker run", "DockerTarget", "added", "ratio"], latency,
                  notes=[f"medians of {args.reps} interleaved runs after one warm-up each; "
                         f"added at most 1 s: {'yes' if max(t_first - p_first, t_done - p_done) <= 1 else 'NO'}"])
    print_summary("bench_docker: job image resolution", COMMAND, ["case", "seconds", "vs cache hit"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
