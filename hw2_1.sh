#!/usr/bin/env bash
# P1: conditional DDPM digits. Usage: bash hw2_1.sh OUT_DIR   (writes 0_001.png … 9_100.png)
set -euo pipefail
if [ "$#" -ne 1 ]; then
  echo "usage: bash hw2_1.sh OUT_DIR" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$HERE/hw2lib/launch.py" p1.generate -- "$1"
