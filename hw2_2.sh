#!/usr/bin/env bash
# P2: DDIM faces. Usage: bash hw2_2.sh NOISE_DIR OUT_DIR UNET_PT
set -euo pipefail
if [ "$#" -ne 3 ]; then
  echo "usage: bash hw2_2.sh NOISE_DIR OUT_DIR UNET_PT" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$HERE/hw2lib/launch.py" p2.sample -- "$1" "$2" "$3"
