"""Timing and printing helpers shared by the benchmarks.

Benchmarks print figures and ratios against a peer measured in the same run; they assert
nothing about speed. Absolute times depend on the machine and its load, ratios much less.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import platform
import shutil
import socket
import statistics
import struct
import time
import sys
import tempfile
from typing import Any, Iterable, Iterator, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run as `python benchmarks/bench_x.py` from a checkout
    sys.path.insert(0, REPO_ROOT)

_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else float("nan")


def rate(value: float) -> str:
    """Human calls-per-second: 3.1M, 2.2K, 704."""
    if value != value:  # NaN
        return "n/a"
    for div, suffix in ((1e6, "M"), (1e3, "K")):
        if value >= div:
            return f"{value / div:.2f}{suffix}"
    return f"{value:.0f}"


def secs(value: float | None) -> str:
    if value is None or value != value:
        return "n/a"
    if value < 0.001:
        return f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.0f} ms"
    return f"{value:.2f} s"


def ratio(num: float | None, den: float | None) -> str:
    if not num or not den or num != num or den != den:
        return "n/a"
    r = num / den
    return f"{r:,.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def size(n: int) -> str:
    """Bytes for people: 0 B, 20.5 KB, 100.0 MB."""
    for div, unit in ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine_line() -> str:
    try:
        load = "load %.1f" % os.getloadavg()[0]
    except OSError:
        load = "load n/a"
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores, {load}, {_dt.date.today().isoformat()}")


def print_summary(title: str, command: str, headers: Sequence[str],
                  rows: Sequence[Sequence[object]], notes: Sequence[str] = ()) -> None:
    """The block to paste into benchmarks/README.md."""
    print("\n===== summary (paste into benchmarks/README.md) =====\n")
    print(f"#### {title}\n")
    print(f"`{command}` — {machine_line()}\n")
    print(markdown_table(headers, rows))
    for note in notes:
        print(f"\n{note}")
    print()


def section(title: str) -> None:
    print(f"\n--- {title} ---", flush=True)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[str]:
    """A temp dir removed afterwards (RUNYARD_KEEP_BENCH=1 keeps it for inspection)."""
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        if not os.environ.get("RUNYARD_KEEP_BENCH"):
            shutil.rmtree(path, ignore_errors=True)
        else:
            print(f"kept {path}")


def interfaces_up() -> dict[str, bool]:
    """Network interfaces of *this process's* network namespace and whether each is up.

    ``/sys/class/net`` shows the namespace sysfs was mounted in, not ours, so ask the kernel
    through a socket (``if_nameindex`` + ``SIOCGIFFLAGS``).
    """
    out = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            req = struct.pack("16sH14x", name.encode()[:15], 0)
            try:
                res = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req)
            except OSError:
                out[name] = False
                continue
            flags = struct.unpack("16sH14x", res)[1]
            out[name] = bool(flags & _IFF_UP)
    return out


def private_netns_problem() -> str | None:
    """None when only loopback is up (inside `unshare --net` with lo up), else why not."""
    try:
        ifaces = interfaces_up()
    except OSError as exc:
        return f"cannot list network interfaces: {exc}"
    exposed = sorted(name for name, up in ifaces.items() if up and name != "lo")
    if exposed:
        return f"non-loopback interface(s) up: {', '.join(exposed)}"
    if not ifaces.get("lo"):
        return "loopback is down (run `ip link set lo up` first)"
    return None



# the trivial job the latency benchmarks submit: one output line, one metric
MARKER = "bench: first line"
TRAIN_PY = f'''from tracking import Run

run = Run.get_context()
print("{MARKER}", flush=True)
run.log("accuracy", 0.9)
'''


def watch_run(run, t0: float, marker: str, timeout: float, poll: float) -> tuple[float | None, float, object]:
    """Watch a submitted run through the store the way a notebook does.

    Returns (seconds from ``t0`` until ``marker`` appeared in its output, or None; seconds until
    a terminal status; that status).
    """
    from tracking.status import RunStatus
    first, text, seen, deadline = None, "", 0, t0 + timeout
    while first is None and time.perf_counter() < deadline:
        for seen, chunk in run.iter_log_chunks(seen):
            text += chunk
        if marker in text:
            first = time.perf_counter() - t0
        else:
            time.sleep(poll)
    status = None
    while time.perf_counter() < deadline:
        status = RunStatus(run.get_status())
        if status.is_terminal():
            break
        time.sleep(poll)
    return first, time.perf_counter() - t0, status


def time_process(argv: list[str], label: str, timeout: float, **popen: Any) -> dict:
    """Run a peer command; seconds until MARKER appears on its stdout and until it exits."""
    import subprocess
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            **popen)
    first = None
    for line in proc.stdout:
        if first is None and MARKER in line:
            first = time.perf_counter() - t0
    code = proc.wait(timeout)
    done = time.perf_counter() - t0
    if code != 0 or first is None:
        raise RuntimeError(f"{label} exited {code}, marker seen: {first is not None}")
    return {"first": first, "done": done}
