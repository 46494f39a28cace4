#!/usr/bin/env bash
# The SVHN DANN+ study: the recipe of bench/p3_train_all.sh at seeds 1 and 2 (its spread), and seed 0 with
# one ingredient changed at a time (with VADA's target conditional entropy added; without the neighbouring
# digits), each a first step and its refinement, two runs at a time, one thread each.
# Then: python bench/p3_study.py RUNS_DIR/svhn_dann-plus*/ RUNS_DIR/svhn_ablate_*/ --spread svhn_dann-plus_s
# Usage: bash bench/p3_svhn_study.sh DIGITS_DIR RUNS_DIR   (DIGITS_DIR holds mnistm/ and svhn_real/)
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash bench/p3_svhn_study.sh DIGITS_DIR RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export D="$1" R="$2" HERE
run() {  # first-step name, refined name, seed, then the flags that differ from the recipe's first step
  local first="$1" second="$2" seed="$3"; shift 3
  OMP_NUM_THREADS=1 python3 "$HERE/hw2lib/launch.py" p3.train --source "$D/mnistm" --target "$D/svhn_real" \
    --out-dir "$R/$first" --steps 4000 --eval-every 250 --width 64 --normalize image --per-domain-bn \
    --augment 0.5 --seed "$seed" "$@" > "$R/$first.log" 2>&1
  OMP_NUM_THREADS=1 python3 "$HERE/hw2lib/launch.py" p3.refine --init-from "$R/$first/best.pt" \
    --target "$D/svhn_real" --out-dir "$R/$second" --steps 3000 --lr 0.003 --eval-every 100 --seed "$seed" \
    > "$R/$second.log" 2>&1
  echo "done: $second"
}
export -f run
printf '%s\n' \
  "run svhn_dann-plus-phase1_s1 svhn_dann-plus_s1 1 --neighbours 0.5" \
  "run svhn_dann-plus-phase1_s2 svhn_dann-plus_s2 2 --neighbours 0.5" \
  "run svhn_ablate_entropy-phase1 svhn_ablate_entropy 0 --neighbours 0.5 --target-entropy 0.1" \
  "run svhn_ablate_no-neighbours-phase1 svhn_ablate_no-neighbours 0" |
  xargs -P 2 -I{} bash -c '{}'
