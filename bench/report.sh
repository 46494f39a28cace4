#!/usr/bin/env bash
# Regenerate every figure and table of the report from the shipped checkpoints.
# Usage: bash bench/report.sh HW2_DATA OUT_DIR
#   HW2_DATA: the course's hw2_data/ (digits/ for P1 and P3; face/noise + face/UNet.pt for P2, skipped if absent)
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash bench/report.sh HW2_DATA OUT_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$1"; OUT="$2"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
python3 -m p1.figures --out "$OUT/p1"
# the accuracy–distance front, from the logged sweep (rerun bench/p1_sweep.py --log to re-measure it)
python3 "$HERE/bench/p1_front.py" "$HERE/p1/checkpoints/front.jsonl" --out "$OUT/p1/front.png" \
  --shipped "dpm++2m 10 s=5 φ=1" > "$OUT/p1/front.md"
if [ -f "$DATA/face/UNet.pt" ] && [ -d "$DATA/face/noise" ]; then
  python3 -m p2.figures --noise-dir "$DATA/face/noise" --unet "$DATA/face/UNet.pt" --out "$OUT/p2"
else
  echo "P2 figures skipped: $DATA/face/UNet.pt or $DATA/face/noise not found"
fi
python3 -m p3.report --digits "$DATA/digits" --out "$OUT/p3" --train-split-check
