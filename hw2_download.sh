#!/usr/bin/env bash
# Verify every checkpoint in checkpoints.json; fetch (atomically) any that is missing or damaged.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$HERE/hw2lib/launch.py" hw2lib.download "$@"
