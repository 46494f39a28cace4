#!/usr/bin/env bash
# The USPS ablation of DANN+: the recipe of bench/p3_train_all.sh (seed 0) with one ingredient removed
# at a time, two runs at a time, one thread each. Needs RUNS_DIR/usps_dann-plus-phase1_s0 from
# bench/p3_train_all.sh (the refinement ablations start from it).
# Then: python bench/p3_study.py RUNS_DIR/usps_dann-plus_s*/ RUNS_DIR/usps_ablate_*/ --spread usps_dann-plus_s
#   (the trailing slashes leave out the runs' .log files)
# Usage: bash bench/p3_usps_study.sh DIGITS_DIR RUNS_DIR   (DIGITS_DIR holds mnistm/ and usps/)
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash bench/p3_usps_study.sh DIGITS_DIR RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export D="$1" R="$2" HERE
if [ ! -f "$R/usps_dann-plus-phase1_s0/best.pt" ]; then
  echo "error: $R/usps_dann-plus-phase1_s0/best.pt not found (run bench/p3_train_all.sh DIGITS_DIR RUNS_DIR usps first)" >&2
  exit 2
fi
refine() {  # name, init run, then the flags that differ from the recipe's refinement
  local name="$1" init="$2"; shift 2
  OMP_NUM_THREADS=1 python3 "$HERE/hw2lib/launch.py" p3.refine --init-from "$R/$init/best.pt" --target "$D/usps" \
    --out-dir "$R/$name" --steps 2000 --eval-every 100 --seed 0 "$@" > "$R/$name.log" 2>&1
  echo "done: $name"
}
export -f refine
no_adversary() {  # the first step without its domain loss (source-only with the same input handling), then refined
  OMP_NUM_THREADS=1 python3 "$HERE/hw2lib/launch.py" p3.train --source "$D/mnistm" --target "$D/usps" \
    --out-dir "$R/usps_ablate_no-adversary-phase1" --steps 500 --normalize image --per-domain-bn --augment 0 \
    --eval-every 100 --seed 0 --domain-weight 0 > "$R/usps_ablate_no-adversary-phase1.log" 2>&1
  refine usps_ablate_no-adversary usps_ablate_no-adversary-phase1
}
export -f no_adversary
printf '%s\n' \
  "refine usps_ablate_no-balance usps_dann-plus-phase1_s0 --balance 0" \
  "refine usps_ablate_no-entropy usps_dann-plus-phase1_s0 --entropy 0" \
  "refine usps_ablate_no-pseudo-labels usps_dann-plus-phase1_s0 --pseudo-weight 0" \
  "no_adversary" |
  xargs -P 2 -I{} bash -c '{}'
