#!/usr/bin/env bash
# Train every row of the P3 accuracy table, for both targets (the shipped checkpoints are dann-plus).
# Usage: bash bench/p3_train_all.sh DIGITS_DIR RUNS_DIR   (DIGITS_DIR holds mnistm/ usps/ svhn/)
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash bench/p3_train_all.sh DIGITS_DIR RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="$1"; R="$2"
train() {  # target method steps
  PYTHONPATH="$HERE" python3 -m p3.train --method "$2" --source "$D/mnistm" --target "$D/$1" --out-dir "$R/$1_$2" --steps "$3"
}
train usps dann-plus 1200
train usps dann 1000
train svhn dann-plus 1200
train svhn dann 1000
train usps source-only 600
train svhn source-only 600
train usps target-only 600
train svhn target-only 600
