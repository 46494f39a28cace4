#!/usr/bin/env bash
# One call for a lent GPU: the grader's path on CUDA (bench/gpu_check.sh), then P1 training for the minutes left.
# Usage: bash recipes/gpu_train.sh DIGITS_DIR CLASSIFIER_PTH OUT_DIR MINUTES [p1.train flags…]
#   DIGITS_DIR holds mnistm/ usps/ svhn/; OUT_DIR/check/report.md is the check, OUT_DIR/p1/ the trained
#   model (model.pt, best.pt, metrics.jsonl, report.md; under 64 MiB in all, to be copied home).
#   MINUTES is the training's budget (calibration included), after the check. GPU_CHECK_FLAGS adds flags
#   to bench/gpu_check.py (e.g. "--device cpu --train-steps 1" for a dry run without a GPU), GPU_TRAIN_FLAGS
#   to recipes/gpu_train.py (e.g. "--eval-per-class 10").
#   A failed check is reported and does not stop the training: the minutes are spent either way.
set -euo pipefail
usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ "$#" -lt 4 ]; then usage >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIGITS="$1"; CLASSIFIER="$2"; OUT="$3"; MINUTES="$4"; shift 4
mkdir -p "$OUT"
# shellcheck disable=SC2086
if bash "$HERE/bench/gpu_check.sh" "$DIGITS" "$CLASSIFIER" "$OUT/check" ${GPU_CHECK_FLAGS:-} > "$OUT/check.log" 2>&1; then
  echo "gpu check: passed ($OUT/check/report.md)"
else
  echo "gpu check: FAILED, see $OUT/check/report.md and $OUT/check.log; training anyway" >&2
fi
# shellcheck disable=SC2086
python3 "$HERE/recipes/gpu_train.py" --data "$DIGITS/mnistm" --classifier "$CLASSIFIER" --out "$OUT/p1" \
  --minutes "$MINUTES" ${GPU_TRAIN_FLAGS:-} -- "$@"
