#!/usr/bin/env bash
# Ship what the protocol picks from bench/p3_train_all.sh's runs: every row's best.pt (best target val),
# each DANN+ from the seed with the best val (the lower seed on a tie), then rehash the manifest.
# Usage: bash bench/p3_ship.sh RUNS_DIR
set -euo pipefail
if [ "$#" -ne 1 ]; then echo "usage: bash bench/p3_ship.sh RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
R="$1"
# the protocol: no shipped run may have trained on the synthetic house-number stand-in (digits/svhn/)
if grep -lE '"/[^"]*digits/svhn/?"' "$R"/*/args.json 2>/dev/null; then
  echo "error: the runs above name digits/svhn (the synthetic stand-in, not training data); nothing shipped" >&2
  exit 1
fi
best_seed() {  # run-name prefix → the run folder whose best.pt has the highest val accuracy
  python3 - "$R" "$1" <<'PY'
import sys, torch
from pathlib import Path
runs = sorted(Path(sys.argv[1]).glob(sys.argv[2] + "*/best.pt"))
scores = [(torch.load(p, weights_only=True)["val_accuracy"], -i, p.parent) for i, p in enumerate(runs)]
print(max(scores)[2])
PY
}
for row in usps_dann usps_source-only usps_target-only svhn_dann svhn_source-only svhn_target-only; do
  cp "$R/$row/best.pt" "$HERE/p3/checkpoints/$row.pt"
done
for target in usps svhn; do
  picked="$(best_seed "${target}_dann-plus_s")"
  cp "$picked/best.pt" "$HERE/p3/checkpoints/${target}_dann-plus.pt"
  echo "${target}_dann-plus: $(basename "$picked")"
done
rm -rf "$HERE/p3/checkpoints/logs"
for run in "$R"/*_dann-plus_s* "$R"/*_dann-plus-phase1_s* "$R"/usps_dann "$R"/usps_source-only "$R"/usps_target-only \
  "$R"/svhn_dann "$R"/svhn_source-only "$R"/svhn_target-only; do
  mkdir -p "$HERE/p3/checkpoints/logs/$(basename "$run")"
  cp "$run/metrics.jsonl" "$run/args.json" "$HERE/p3/checkpoints/logs/$(basename "$run")/"
done
bash "$HERE/hw2_download.sh" --rehash
