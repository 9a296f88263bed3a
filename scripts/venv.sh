# Sourced by scripts/test and scripts/demo: a virtualenv at .venv with mlship installed (editable) and its
# dev tools, rebuilt only when pyproject.toml changes.
VENV="${MLSHIP_VENV:-$PWD/.venv}"

ensure_venv() {
  local stamp="$VENV/.mlship-pyproject.sha256" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    export PATH="$VENV/bin:$PATH"
    return 0
  fi
  echo "== setting up $VENV (Python: $(python3 --version 2>&1))" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
  echo "$want" >"$stamp"
  export PATH="$VENV/bin:$PATH"
}
