#!/usr/bin/env bash
# Regenerate every figure and table of the report from the shipped checkpoints and the logs, then REPORT.md.
# Usage: bash report/report.sh HW2_DATA CLASSIFIER_PTH
#   HW2_DATA: the course's hw2_data/ (digits/ for P1 and P3; face/noise + face/UNet.pt for P2, skipped if absent)
#   CLASSIFIER_PTH: the grader's LeNet (the course's Classifier.pth) for P1's scores
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash report/report.sh HW2_DATA CLASSIFIER_PTH" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$1"; CLASSIFIER="$2"; OUT="$HERE/figures"
[ -d "$DATA/digits" ] || { echo "error: $DATA/digits: no such directory (HW2_DATA is the course's hw2_data/)" >&2; exit 2; }
[ -f "$CLASSIFIER" ] || { echo "error: $CLASSIFIER: no such file (CLASSIFIER_PTH is the course's Classifier.pth)" >&2; exit 2; }
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"  # for the studies/ and report/ scripts
py() { python3 "$HERE/hw2lib/launch.py" "$@"; }  # this checkout's modules, wherever it runs from
py p1.figures --out "$OUT/p1"
# P1: what hw2_1.sh writes, scored as the grader does, with the distance to real digits and its references
DIGITS_TMP="$(mktemp -d)"; trap 'rm -rf "$DIGITS_TMP"' EXIT
bash "$HERE/hw2_1.sh" "$DIGITS_TMP/p1" > /dev/null
py p1.evaluate "$DIGITS_TMP/p1" --classifier "$CLASSIFIER" --real "$DATA/digits/mnistm" > "$OUT/p1/evaluation.txt"
# the accuracy–distance front of the shipped model (stage 13), from its logged sweep (studies/p1_sweep.py --log
# re-measures it), and the shipping rule's five-seed table over every model and setting logged at five seeds
python3 "$HERE/studies/p1_front.py" "$HERE/logs/p1/shipped/stage13.front.jsonl" --out "$OUT/p1/front.png" > "$OUT/p1/front.md"
python3 "$HERE/studies/p1_rule.py" "$HERE"/logs/p1/*/*front*.jsonl --top 6 --plain \
  > "$OUT/p1/rule.md"
# the training curve of the shipped model's last stage: the highest-numbered ddpm_mnistm.stageN log
STAGE_LOG="$(ls -v "$HERE"/logs/p1/shipped/ddpm_mnistm.stage*.metrics.jsonl | tail -n 1)"
python3 "$HERE/studies/p1_training.py" "$STAGE_LOG" > "$OUT/p1/training.md"
# the training curves of P1's stages and of P3's shipped DANN+ runs, from the logs
python3 "$HERE/report/training_curves.py" --p1 "$HERE/logs/p1/shipped" --p3 "$HERE/logs/p3/shipped" --out "$OUT"
# P2's figures drawn by the digit model through the same DDIM; the face versions when the course's files are given
py p1.ddim_figures --out "$OUT/p2"
if [ -f "$DATA/face/UNet.pt" ] && [ -d "$DATA/face/noise" ]; then
  py p2.figures --noise-dir "$DATA/face/noise" --unet "$DATA/face/UNet.pt" --out "$OUT/p2"
else
  echo "P2 figures skipped: $DATA/face/UNet.pt or $DATA/face/noise not found"
fi
py p3.report --digits "$DATA/digits" --out "$OUT/p3" --train-split-check
L="$HERE/logs/p3/shipped"  # every adapted row's val pick beside its label-free pick; each DANN+ over its three seeds
python3 "$HERE/studies/p3_study.py" "$L/svhn_dann" "$L"/svhn_dann-plus_s* "$L/usps_dann" "$L"/usps_dann-plus_s* \
  --spread svhn_dann-plus_s usps_dann-plus_s > "$OUT/p3/seeds.md"
S="$HERE/logs/p3/studies"  # the upper bound trained as DANN+ is (backbone, input, augmentation, length), three seeds
python3 "$HERE/studies/p3_study.py" "$S"/svhn_target-only-aug_s* "$S"/usps_target-only-aug_s* \
  --spread svhn_target-only-aug_s usps_target-only-aug_s > "$OUT/p3/upper_bound.md"
python3 "$HERE/report/render_report.py" "$HERE/report/report.md.in" "$HERE/REPORT.md"
echo "wrote $OUT/ and REPORT.md"
