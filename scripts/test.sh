#!/usr/bin/env bash
# The one test command of runyard: `bash scripts/test.sh [pytest args...]`.
#
# On a fresh Debian machine (as root) it installs what the suite needs, then runs pytest inside a
# private network namespace with its own dockerd, so no test can reach any other host and the
# real-service tests (Docker, Ray, moto S3, Chromium) all talk over the namespace's loopback.
#
# Two stages, one file:
#   host stage   (network)  apt packages, .venv + `pip install -e .[dev]`, base rootfs tar
#   netns stage  (no network) lo up, own dockerd, base image import, pytest
# The host stage re-runs this script under `unshare` with RUNYARD_TEST_STAGE=netns.
#
# What the tests can rely on inside the namespace:
#   DOCKER_HOST=unix:///run/runyard-test/docker.sock   this run's own dockerd
#   RUNYARD_TEST_BASE_IMAGE=runyard/python-base:bookworm  imported, `python3` inside
#   RUNYARD_TEST_NETNS=1         private net namespace: 127.0.0.1 is the only address
#   RUNYARD_TEST_CHROMIUM=/usr/bin/chromium
#   containers started with `--network host` share that loopback.
#
# Environment knobs: CI=true (missing services fail instead of skip), RUNYARD_TEST_NO_NETNS=1
# (run on the host, as a non-root user would), RUNYARD_TEST_KEEP_DOCKER_LOG=1 (copy the dockerd
# log to test-artifacts/, which also happens whenever the run fails).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BASE_IMAGE="${RUNYARD_TEST_BASE_IMAGE:-runyard/python-base:bookworm}"
ROOTFS_TAR="${RUNYARD_ROOTFS_TAR:-/var/cache/runyard/rootfs-bookworm.tar}"
RUN_DIR=/run/runyard-test                   # a private tmpfs inside the namespace
DOCKER_DATA_ROOT=/var/lib/runyard-test-docker  # persistent: keeps the image cache between runs
CHROMIUM=/usr/bin/chromium
export RUNYARD_ROOTFS_TAR="$ROOTFS_TAR" RUNYARD_BASE_IMAGE="$BASE_IMAGE"

# --- small helpers -----------------------------------------------------------------------------

say() { echo "test.sh: $*" >&2; }
warn() { echo "test.sh: WARNING: $*" >&2; }
die() { echo "test.sh: ERROR: $*" >&2; run_rc=1; exit 1; }

now() { date +%s.%N; }
# Phases are timed so a slow warm run points at its culprit.
phase_start=""
phase() { phase_start=$(now); say "[$1]"; }
phase_done() { say "  done in $(awk -v a="$phase_start" -v b="$(now)" 'BEGIN{printf "%.1f s", b-a}')"; }

is_root() { [[ $(id -u) == 0 ]]; }

# Wait for a background child even when trapped signals interrupt `wait`; return its status.
wait_for() {
    local pid="$1" rc
    while :; do
        wait "$pid" && rc=0 || rc=$?
        kill -0 "$pid" 2>/dev/null || return "$rc"
    done
}

forward_term() {
    local init
    init="$(cat "/proc/$1/task/$1/children" 2>/dev/null)" || return 0
    init="${init%% *}"
    [[ -n $init ]] || return 0
    say "SIGTERM: stopping the test run"
    kill -TERM "$init" 2>/dev/null || true
}

# --- host stage --------------------------------------------------------------------------------

# command that proves a package is installed -> Debian package providing it
declare -A NEEDED_PACKAGES=(
    [python3]=python3
    [mount]=mount
    [dockerd]=docker.io
    [chromium]=chromium
    [mmdebstrap]=mmdebstrap
    [ip]=iproute2
    [unshare]=util-linux
    [nsenter]=util-linux
)

ensure_system_packages() {
    local missing=() cmd
    for cmd in "${!NEEDED_PACKAGES[@]}"; do
        command -v "$cmd" >/dev/null || missing+=("${NEEDED_PACKAGES[$cmd]}")
    done
    # Debian's python3 cannot create a venv (no ensurepip) without python3-venv.
    if [[ ! -x "$VENV/bin/python" ]] && ! python3 -c 'import ensurepip' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    ((${#missing[@]})) || return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if ! is_root; then
        warn "missing ${missing[*]} and not root: cannot apt-get install; tests needing them will skip"
        return 0
    fi
    say "apt-get install ${missing[*]}"
    # Other jobs may hold the dpkg lock on a shared machine: wait for it rather than fail.
    local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
    local install=("${apt[@]}" install -y --no-install-recommends "${missing[@]}")
    # Update only when needed: no lists at all, or the install failed on stale/missing lists.
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        "${apt[@]}" update
    fi
    if ! DEBIAN_FRONTEND=noninteractive "${install[@]}"; then
        "${apt[@]}" update
        DEBIAN_FRONTEND=noninteractive "${install[@]}"
    fi
}

# shellcheck source=venv.sh
source "$ROOT/scripts/venv.sh"

can_unshare() {
    is_root && [[ -z "${RUNYARD_TEST_NO_NETNS:-}" ]] &&
        unshare --net --mount --pid --fork true 2>/dev/null
}

host_stage() {
    local t0
    t0=$(now)
    phase "system packages"; ensure_system_packages; phase_done
    phase "python venv"; ensure_venv; phase_done

    if can_unshare; then
        # mmdebstrap needs the Debian mirror, which the namespace cannot reach: make the tar now.
        phase "base rootfs"; bash docker/build-base-image.sh --rootfs-only; phase_done
        say "entering private network namespace"
        # --net: only a loopback; --mount: private /run/runyard-test and dockerd's mounts vanish
        # with the namespace; --pid/--fork/--mount-proc: whatever a test leaks (ray, moto,
        # chromium, dockerd itself) is killed by the kernel when the run ends; --kill-child: the
        # same if this outer process is killed.
        unshare --net --mount --propagation private --pid --fork --mount-proc --kill-child \
            env RUNYARD_TEST_STAGE=netns RUNYARD_TEST_T0="$t0" bash "$ROOT/scripts/test.sh" "$@" &
        local unshare_pid=$!
        # unshare blocks SIGTERM in its parent, so a CI timeout's TERM would be lost: hand it to
        # the namespace's init (unshare's only child), which lets pytest tear down and stops
        # dockerd. Ctrl-C needs no forwarding: the terminal signals the whole process group.
        trap 'forward_term "$unshare_pid"' TERM HUP
        trap ':' INT
        local rc=0
        wait_for "$unshare_pid" || rc=$?
        exit "$rc"
    fi

    # Fallback: no namespace (not root, or unshare refused). Use whatever Docker the caller has.
    warn "cannot create a private network namespace (need root and unshare); running on the host."
    warn "tests may reach this machine's network, and docker/ray/browser tests will skip when"
    warn "their service is missing${CI:+ -- but CI=$CI, so they will FAIL instead}."
    if command -v docker >/dev/null && docker version >/dev/null 2>&1; then
        bash docker/build-base-image.sh "$BASE_IMAGE" || warn "could not build $BASE_IMAGE"
        export RUNYARD_TEST_BASE_IMAGE="$BASE_IMAGE"
    fi
    [[ -x $CHROMIUM ]] && export RUNYARD_TEST_CHROMIUM="$CHROMIUM"
    run_pytest "$t0" "$@"
}

# --- netns stage -------------------------------------------------------------------------------

dockerd_pid=""
pytest_pid=""
run_rc=0
data_root=""
temp_data_root=0

stop_dockerd() {
    [[ -n $dockerd_pid ]] || return 0
    if kill -0 "$dockerd_pid" 2>/dev/null; then
        # SIGTERM lets dockerd stop its containers and its managed containerd cleanly.
        kill -TERM "$dockerd_pid" 2>/dev/null || true
        local i
        for i in $(seq 150); do
            kill -0 "$dockerd_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$dockerd_pid" 2>/dev/null; then
            warn "dockerd did not stop in 15 s; killing it"
            kill -KILL "$dockerd_pid" 2>/dev/null || true
        fi
        wait "$dockerd_pid" 2>/dev/null || true
    fi
    dockerd_pid=""
    # The log lives on the namespace's tmpfs and vanishes with it: keep it when asked or when
    # the run failed, where CI collects artifacts.
    if [[ -n "${RUNYARD_TEST_KEEP_DOCKER_LOG:-}" || $run_rc != 0 ]] && [[ -f "$RUN_DIR/dockerd.log" ]]; then
        mkdir -p "$ROOT/test-artifacts"
        cp "$RUN_DIR/dockerd.log" "$ROOT/test-artifacts/dockerd.log" &&
            say "dockerd log kept in test-artifacts/dockerd.log"
    fi
    if ((temp_data_root)); then
        # Overlay mounts live in this mount namespace only, but unmount before deleting anyway.
        findmnt -rn -o TARGET | grep "^$data_root/" | sort -r | xargs -r umount -l 2>/dev/null || true
        rm -rf "$data_root"
    fi
}

start_dockerd() {
    mkdir -p "$RUN_DIR"
    # Private tmpfs: concurrent runs each get their own socket, pidfile and exec-root at the same
    # paths, so DOCKER_HOST is the same constant in every run.
    mount -t tmpfs -o mode=0755 runyard-test "$RUN_DIR"

    # One dockerd per data root. A concurrent run (another engineer on the same machine) holds the
    # lock; this run then uses a throwaway data root and re-imports the image (a few seconds).
    data_root="$DOCKER_DATA_ROOT"
    mkdir -p "$(dirname "$data_root")"
    exec 9>"$data_root.lock"
    if ! flock -n 9; then
        data_root="$(mktemp -d "$DOCKER_DATA_ROOT.tmp.XXXXXX")"
        temp_data_root=1
        warn "$DOCKER_DATA_ROOT is in use by another run; using throwaway $data_root"
    fi

    # --bridge=none/--iptables=false: the namespace has no uplink and no bridge to build; host
    # networking (the namespace's loopback) is the only container network. setsid: a Ctrl-C must
    # reach pytest (whose teardown still needs Docker), not dockerd. The lock fd is closed for
    # dockerd so a leaked daemon cannot keep the data root locked.
    setsid dockerd \
        --host "unix://$RUN_DIR/docker.sock" \
        --data-root "$data_root" \
        --exec-root "$RUN_DIR/exec" \
        --pidfile "$RUN_DIR/dockerd.pid" \
        --bridge=none --iptables=false --ip6tables=false \
        >"$RUN_DIR/dockerd.log" 2>&1 9>&- &
    dockerd_pid=$!
    export DOCKER_HOST="unix://$RUN_DIR/docker.sock"

    local i
    for i in $(seq 300); do
        docker version >/dev/null 2>&1 && return 0
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 30 "$RUN_DIR/dockerd.log" >&2 || true
    die "dockerd did not answer on $DOCKER_HOST"
}

on_exit() {
    ((run_rc)) || run_rc="$1"
    stop_dockerd
}

smoke_check_docker() {
    # One container round trip proves image, runtime and host networking before pytest starts,
    # so a broken engine shows here and not as fifty failing tests.
    local out
    out="$(docker run --rm --network host "$BASE_IMAGE" python3 -c 'print("ok")' 2>&1)" ||
        die "docker run $BASE_IMAGE failed: $out"
}

netns_stage() {
    local t0="${RUNYARD_TEST_T0:-$(now)}" rc=0
    unset RUNYARD_TEST_STAGE RUNYARD_TEST_T0  # internal to this script, not for tests
    # A new net namespace starts with lo down: nothing, not even 127.0.0.1, works until it is up.
    ip link set lo up
    # Proxies are unreachable here, and clients that honour them would send loopback traffic
    # (moto, the UI server) to them.
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
    export NO_PROXY=127.0.0.1,localhost,::1 no_proxy=127.0.0.1,localhost,::1
    export RUNYARD_TEST_NETNS=1

    trap 'on_exit $?' EXIT
    # Before pytest runs, a signal just ends the run (the EXIT trap stops dockerd).
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP

    phase "dockerd"; start_dockerd; phase_done
    phase "base image"
    bash docker/build-base-image.sh --import-only "$BASE_IMAGE"
    export RUNYARD_TEST_BASE_IMAGE="$BASE_IMAGE"
    smoke_check_docker
    phase_done
    [[ -x $CHROMIUM ]] && export RUNYARD_TEST_CHROMIUM="$CHROMIUM"

    run_pytest "$t0" "$@" || rc=$?
    run_rc=$rc
    phase "stop dockerd"; stop_dockerd; phase_done
    exit "$rc"
}

# --- both stages -------------------------------------------------------------------------------

print_versions() {
    say "versions:"
    {
        echo "  kernel     $(uname -r)"
        echo "  python     $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
        if [[ -n "${DOCKER_HOST:-}" ]] || command -v dockerd >/dev/null; then
            echo "  docker     $(docker version -f 'client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo unavailable)"
        fi
        command -v containerd >/dev/null && echo "  containerd $(containerd --version | awk '{print $3}')"
        command -v runc >/dev/null && echo "  runc       $(runc --version | awk 'NR==1{print $3}')"
        command -v mmdebstrap >/dev/null && echo "  mmdebstrap $(mmdebstrap --version | awk '{print $2}')"
        # The Debian wrapper script prints a harmless shell warning on stderr; drop it.
        [[ -x $CHROMIUM ]] && echo "  chromium   $("$CHROMIUM" --version 2>/dev/null | awk '{print $2}')"
        "$VENV/bin/python" - <<'EOF'
from importlib.metadata import version, PackageNotFoundError
for name in ("pytest", "docker-py", "ray", "moto", "s3fs", "fsspec", "pyarrow", "playwright", "mlflow"):
    try:
        print(f"  {name:<10} {version(name.replace('-py', ''))}")
    except PackageNotFoundError:
        print(f"  {name:<10} not installed")
EOF
    } >&2
}

run_pytest() {
    local t0="$1" rc=0
    shift
    print_versions
    say "setup took $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f s", b-a}')"
    phase "pytest $*"
    # pytest runs in the background so that a SIGTERM reaches this shell's trap at once (a trap
    # waits for a foreground command); the trap turns it into SIGINT, pytest's graceful stop,
    # so fixtures still tear down. A background job starts with SIGINT ignored, which Python
    # would keep, so the handler is restored before pytest starts. Otherwise this is exactly
    # `python -m pytest "$@"` (cwd on sys.path, same exit codes).
    # This shell may be the namespace's init, which only receives signals it has a trap for:
    # the traps set around pytest are swapped back afterwards, never dropped.
    local saved_traps
    saved_traps="$(trap -p TERM HUP INT)"
    "$VENV/bin/python" -c 'import signal, sys, pytest
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(pytest.main())' "$@" &
    pytest_pid=$!
    trap 'kill -INT "$pytest_pid" 2>/dev/null || true' TERM HUP
    trap ':' INT  # Ctrl-C: the terminal already signalled pytest itself
    wait_for "$pytest_pid" || rc=$?
    trap - TERM HUP INT
    eval "$saved_traps"
    phase_done
    if ((rc == 5)); then
        say "FAILED: pytest collected no tests (exit 5); a test run that tests nothing is not a pass"
    fi
    return "$rc"
}

if [[ "${RUNYARD_TEST_STAGE:-}" == netns ]]; then
    netns_stage "$@"
else
    host_stage "$@"
fi
