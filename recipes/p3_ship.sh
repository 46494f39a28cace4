#!/usr/bin/env bash
# Ship what the protocol picks from recipes/p3_train_all.sh's runs, all or nothing (recipes/p3_ship.py):
# every row's best.pt, each DANN+ from its best-val seed, the shipped runs' logs, the rehashed manifest.
# Usage: bash recipes/p3_ship.sh DIGITS_DIR RUNS_DIR
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$HERE/p3_ship.py" "$@"
