#!/usr/bin/env bash
# Train every row of the P3 accuracy table, for both targets (hw2_3.sh ships the dann-plus rows), with the
# exact step counts of the shipped checkpoints. Copy each RUNS_DIR/<target>_<method>/best.pt to
# p3/checkpoints/<target>_<method>.pt and run `bash hw2_download.sh --rehash` to ship a retrained set.
# Usage: bash bench/p3_train_all.sh DIGITS_DIR RUNS_DIR   (DIGITS_DIR holds mnistm/ usps/ svhn/)
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash bench/p3_train_all.sh DIGITS_DIR RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="$1"; R="$2"
train() {  # target method steps
  PYTHONPATH="$HERE" python3 -m p3.train --method "$2" --source "$D/mnistm" --target "$D/$1" --out-dir "$R/$1_$2" --steps "$3"
}
train usps dann-plus 2500
train usps dann 1000
train svhn dann-plus 2500
train svhn dann 1000
train usps source-only 600
train svhn source-only 600
train usps target-only 600
train svhn target-only 600
# the MNIST-M classifier that P1 uses to pick among candidate digits (p1/checkpoints/selector_mnistm.pt)
PYTHONPATH="$HERE" python3 -m p3.train --method target-only --source "$D/mnistm" --target "$D/mnistm" --out-dir "$R/mnistm_selector" --steps 1500
