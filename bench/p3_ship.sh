#!/usr/bin/env bash
# Ship what the protocol picks from bench/p3_train_all.sh's runs: every row's best.pt (best target val),
# USPS DANN+ from the seed with the best val (the lower seed on a tie), then rehash the manifest.
# Usage: bash bench/p3_ship.sh RUNS_DIR
set -euo pipefail
if [ "$#" -ne 1 ]; then echo "usage: bash bench/p3_ship.sh RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
R="$1"
best_seed() {  # run-name prefix → the run folder whose best.pt has the highest val accuracy
  python3 - "$R" "$1" <<'PY'
import sys, torch
from pathlib import Path
runs = sorted(Path(sys.argv[1]).glob(sys.argv[2] + "*/best.pt"))
scores = [(torch.load(p, weights_only=True)["val_accuracy"], -i, p.parent) for i, p in enumerate(runs)]
print(max(scores)[2])
PY
}
for row in usps_dann usps_source-only usps_target-only svhn_dann-plus svhn_dann svhn_source-only svhn_target-only; do
  cp "$R/$row/best.pt" "$HERE/p3/checkpoints/$row.pt"
done
picked="$(best_seed usps_dann-plus_s)"
cp "$picked/best.pt" "$HERE/p3/checkpoints/usps_dann-plus.pt"
for run in "$R"/usps_dann-plus_s* "$R"/usps_dann-plus-phase1_s* "$R"/svhn_dann-plus "$R"/svhn_dann-plus-phase1 \
  "$R"/usps_dann "$R"/usps_source-only "$R"/usps_target-only "$R"/svhn_dann "$R"/svhn_source-only "$R"/svhn_target-only; do
  mkdir -p "$HERE/p3/checkpoints/logs/$(basename "$run")"
  cp "$run/metrics.jsonl" "$run/args.json" "$HERE/p3/checkpoints/logs/$(basename "$run")/"
done
echo "usps_dann-plus: $(basename "$picked")"
bash "$HERE/hw2_download.sh" --rehash
