#!/usr/bin/env bash
# The main job on a fresh machine: `bash scripts/demo.sh`.
# Creates .venv (runyard[dev]) when needed, then runs `runyard demo`: the Azure doc's Ridge alpha
# sweep (train.py + mylib.py) submitted with ScriptRunConfig to the local target, recorded in the
# embedded store ./.runyard, and prints the best alpha and where to look.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=venv.sh
source "$ROOT/scripts/venv.sh"
ensure_venv >&2
exec "$VENV/bin/runyard" demo "$@"
