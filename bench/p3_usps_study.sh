#!/usr/bin/env bash
# The USPS study behind README "P3 results": the shipped DANN+ recipe with 3 seeds, and the same recipe
# with each ingredient removed once (seed 0, same steps), two runs at a time, one thread each.
# Then: python bench/p3_study.py RUNS_DIR/usps_* --spread usps_recipe_s
# Usage: bash bench/p3_usps_study.sh DIGITS_DIR RUNS_DIR   (DIGITS_DIR holds mnistm/ and usps/)
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash bench/p3_usps_study.sh DIGITS_DIR RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export D="$1" R="$2" HERE
mkdir -p "$R"
one() {  # name, then the flags that differ from the recipe
  local name="$1"; shift
  OMP_NUM_THREADS=1 PYTHONPATH="$HERE" python3 -m p3.train --method dann-plus --source "$D/mnistm" \
    --target "$D/usps" --out-dir "$R/$name" --steps 2500 --eval-every 100 "$@" \
    > "$R/$name.log" 2>&1
  echo "done: $name"
}
export -f one
# the recipe's own flags are p3.train's dann-plus defaults: self-training from p = 0.12 on SHOT losses
# (centroid labels × 0.3, class balance × 1, entropy × 1), source and domain losses off once it runs
printf '%s\n' \
  "usps_recipe_s0 --seed 0" \
  "usps_recipe_s1 --seed 1" \
  "usps_recipe_s2 --seed 2" \
  "usps_no-centroid --pseudo-labels teacher" \
  "usps_no-balance --balance 0" \
  "usps_no-entropy --entropy 0" \
  "usps_no-pseudo-labels --pseudo-weight 0" \
  "usps_keep-source --source-weight 1" \
  "usps_no-adversary --domain-weight 0" |
  xargs -P 2 -I{} bash -c 'one {}'
