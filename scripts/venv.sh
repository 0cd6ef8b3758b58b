# Sourced by scripts/test.sh and scripts/demo.sh: create .venv and install runyard[dev] into it,
# again only when pyproject.toml (or the venv's Python) changed since the last install.
# Needs: ROOT (repo root). Provides: VENV, ensure_venv.
VENV="${VENV:-$ROOT/.venv}"

ensure_venv() {
    local say_fn=echo
    declare -F say >/dev/null && say_fn=say
    if [[ ! -x "$VENV/bin/python" ]]; then
        $say_fn "creating $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.runyard-deps.sha256" want
    want="$( (cat "$ROOT/pyproject.toml"; "$VENV/bin/python" -VV) | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        $say_fn "venv up to date (pyproject.toml unchanged)"
        return
    fi
    $say_fn "pip install -e '.[dev]' (a few minutes the first time)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    (cd "$ROOT" && "$VENV/bin/python" -m pip install -q -e '.[dev]')
    echo "$want" >"$stamp"
}
