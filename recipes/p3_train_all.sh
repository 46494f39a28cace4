#!/usr/bin/env bash
# Retrain every row of the P3 accuracy table from nothing, exactly as shipped, for one target or both.
# Usage: bash recipes/p3_train_all.sh DIGITS_DIR RUNS_DIR [usps|svhn]
#   DIGITS_DIR holds mnistm/ usps/ svhn/. The two targets are independent: run them side by side
#   with OMP_NUM_THREADS=1 each on a 2-core machine; every run resumes from RUNS_DIR/<name>/last.pt.
# Protocol (the homework's): every adapted row trains on labelled MNIST-M and *unlabelled* target train
#   images only; the target's labels serve only to select (val) and to report (val, and the train split
#   as a second check). Target-only trains on the target's own labels, as the table defines it.
#   recipes/p3_ship.sh checks each run's folders by role (recipes/p3_protocol.py) before shipping it.
# Every run logs RUNS_DIR/<name>/metrics.jsonl and keeps RUNS_DIR/<name>/best.pt (best target val).
# Ship with: bash recipes/p3_ship.sh DIGITS_DIR RUNS_DIR (copies what the protocol picks, rehashes the manifest).
set -euo pipefail
if [ "$#" -lt 2 ] || [ "$#" -gt 3 ]; then echo "usage: bash recipes/p3_train_all.sh DIGITS_DIR RUNS_DIR [usps|svhn]" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="$1"; R="$2"; WHICH="${3:-both}"
. "$HERE/recipes/p3_recipes.sh"  # the DANN+ recipes' flags, py, first_step and refinement

dann_plus() {  # target (usps|svhn): the recipe at seeds 0-2
  local seed
  for seed in 0 1 2; do
    first_step "$1" "$seed" "$R/$1_dann-plus-first_s$seed"
    refinement "$1" "$seed" "$R/$1_dann-plus-first_s$seed" "$R/$1_dann-plus_s$seed"
  done
}

usps() {
  # DANN+ = DANN (grayscale, per-image standardised input, per-domain BN, geometric and polarity
  # augmentation of the source), then SHOT's refinement on USPS alone with the mean teacher's confident
  # labels on strong views; three seeds, best val ships
  dann_plus usps
  # DANN as the paper has it (RGB input, shared BN), 5,000 steps
  py p3.train --source "$D/mnistm" --target "$D/usps" --out-dir "$R/usps_dann" --steps 5000 --width 64
  py p3.train --source "$D/mnistm" --target "$D/usps" --out-dir "$R/usps_source-only" --steps 1000 --width 64 \
    --normalize image --domain-weight 0
  py p3.train --source "$D/usps" --target "$D/usps" --out-dir "$R/usps_target-only" --steps 1000 --width 64 \
    --normalize image --domain-weight 0
}

svhn() {
  # DANN+ = DANN from MNIST-M (grayscale, per-image standardised input, per-domain BN; the source
  # augmented towards house numbers: zoom, polarity, stroke width, blur and parts of neighbouring
  # digits pasted beside the centre one), then SHOT's refinement on real SVHN alone with the mean
  # teacher's confident labels on strong views; three seeds, best val ships (ablations:
  # studies/p3_ablate.sh)
  dann_plus svhn
  py p3.train --source "$D/mnistm" --target "$D/svhn" --out-dir "$R/svhn_dann" --steps 2000 --width 64 \
    --normalize image
  py p3.train --source "$D/mnistm" --target "$D/svhn" --out-dir "$R/svhn_source-only" --steps 1000 --width 64 \
    --normalize image --domain-weight 0
  py p3.train --source "$D/svhn" --target "$D/svhn" --out-dir "$R/svhn_target-only" --steps 4000 \
    --width 64 --normalize image --domain-weight 0
}

case "$WHICH" in
  usps) usps ;;
  svhn) svhn ;;
  both) usps; svhn ;;
  *) echo "error: the third argument is usps or svhn, not '$WHICH'" >&2; exit 2 ;;
esac
