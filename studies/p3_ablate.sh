#!/usr/bin/env bash
# The SVHN DANN+ ablations: the recipe of bench/p3_train_all.sh (seed 0, its flags from
# bench/p3_recipes.sh) with one ingredient changed at a time, two runs at a time, one thread each.
# Needs RUNS_DIR/svhn_dann-plus-phase1_s0 from bench/p3_train_all.sh (the no-consistency refinement
# starts from it).
#   svhn_ablate_no-consistency    the refinement without the teacher's confident labels (SHOT alone)
#   svhn_ablate_no-neighbours     the first step without neighbouring digits, then the recipe's refinement
#   svhn_ablate_entropy           the first step with VADA's target entropy (weight 0.1), then SHOT alone
# Then: python bench/p3_study.py RUNS_DIR/svhn_dann-plus*_s*/ RUNS_DIR/svhn_ablate_*/ --spread svhn_dann-plus_s
#   (the trailing slashes leave out the runs' .log files)
# Usage: bash bench/p3_svhn_study.sh DIGITS_DIR RUNS_DIR   (DIGITS_DIR holds mnistm/ and svhn/)
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash bench/p3_svhn_study.sh DIGITS_DIR RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export D="$1" R="$2" HERE
if [ ! -f "$R/svhn_dann-plus-phase1_s0/best.pt" ]; then
  echo "error: $R/svhn_dann-plus-phase1_s0/best.pt not found (run bench/p3_train_all.sh DIGITS_DIR RUNS_DIR svhn first)" >&2
  exit 2
fi
first() {  # name, then the flags that change the recipe's first step (seed 0)
  local name="$1"; shift
  . "$HERE/bench/p3_recipes.sh"
  OMP_NUM_THREADS=1 python3 "$HERE/hw2lib/launch.py" p3.train --source "$D/mnistm" --target "$D/svhn" \
    --out-dir "$R/$name" "${SVHN_FIRST[@]}" --seed 0 "$@" > "$R/$name.log" 2>&1
}
refine() {  # name, init run, then the flags that change the recipe's refinement (seed 0)
  local name="$1" init="$2"; shift 2
  . "$HERE/bench/p3_recipes.sh"
  OMP_NUM_THREADS=1 python3 "$HERE/hw2lib/launch.py" p3.refine --init-from "$R/$init/best.pt" \
    --target "$D/svhn" --out-dir "$R/$name" "${SVHN_REFINE[@]}" --seed 0 "$@" > "$R/$name.log" 2>&1
  echo "done: $name"
}
export -f first refine
printf '%s\n' \
  "refine svhn_ablate_no-consistency svhn_dann-plus-phase1_s0 --consistency 0" \
  "first svhn_ablate_no-neighbours-phase1 --neighbours 0 && refine svhn_ablate_no-neighbours svhn_ablate_no-neighbours-phase1" \
  "first svhn_ablate_entropy-phase1 --target-entropy 0.1 && refine svhn_ablate_entropy svhn_ablate_entropy-phase1 --consistency 0" |
  xargs -P 2 -I{} bash -c '{}'
