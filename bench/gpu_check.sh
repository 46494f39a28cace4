#!/usr/bin/env bash
# Run on a machine with a GPU: the grader's path on CUDA, checked against the CPU on the same machine.
# Usage: bash bench/gpu_check.sh DIGITS_DIR CLASSIFIER_PTH OUT_DIR [extra flags for bench/gpu_check.py]
#   DIGITS_DIR holds mnistm/ usps/ svhn/ (course layout); writes OUT_DIR/report.md; exit 1 if a check fails.
set -euo pipefail
if [ "$#" -lt 3 ]; then echo "usage: bash bench/gpu_check.sh DIGITS_DIR CLASSIFIER_PTH OUT_DIR [flags]" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIGITS="$1"; CLASSIFIER="$2"; OUT="$3"; shift 3
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"; } > "$OUT/gpu.txt"
python3 "$HERE/bench/gpu_check.py" --digits "$DIGITS" --classifier "$CLASSIFIER" --out "$OUT" "$@"
