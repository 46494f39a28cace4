#!/usr/bin/env bash
# Verify every checkpoint in checkpoints.json; fetch (atomically) any that is missing or damaged.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m hw2lib.download "$@"
