#!/usr/bin/env bash
# Build (once) a virtualenv with the course grader's versions (requirements-grader.txt: Python 3.10,
# torch 2.0.1, torchvision 0.15.2, numpy 1.23.1, Pillow 9.4.0, …) and print its bin folder:
#   PATH="$(bash bench/grader_env.sh):$PATH" bash hw2_3.sh TEST_DIR out.csv
# When requirements-grader.txt changes, its pins are installed again into the same venv. The torch 2.0.1 wheel brings its CUDA
# libraries (about 2.5 GB, once; pip's cache keeps them).
#   HW2_GRADER_VENV  where the venv lives (default ~/.cache/hw2-grader-py310)
#   HW2_PY310        the Python 3.10 interpreter (default: python3.10 on PATH, or pyenv's)
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="$HERE/requirements-grader.txt"
V="${HW2_GRADER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hw2-grader-py310}"
py310() {
  if [ -n "${HW2_PY310:-}" ]; then echo "$HW2_PY310"; return; fi
  local c
  for c in python3.10 "$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      command -v "$c"; return
    fi
  done
  echo "error: no Python 3.10 found (install it, or set HW2_PY310 to its path)" >&2; exit 1
}
STAMP="$V/.hw2-requirements.sha256"
WANT="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ ! -x "$V/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  PY="$(py310)"
  [ -x "$V/bin/python" ] || "$PY" -m venv "$V" >&2
  "$V/bin/python" -m pip install -q --upgrade "pip<25" >&2
  # a machine-wide pip constraint file may cap torch at a newer release; the grader's pins are older
  PIP_CONSTRAINT= "$V/bin/python" -m pip install -q -r "$REQS" >&2
  echo "$WANT" > "$STAMP"
fi
echo "$V/bin"
