#!/usr/bin/env bash
# The USPS DANN+ ablation: the recipe of bench/p3_train_all.sh (seed 0) without the mean teacher's
# confident labels on strong views (SHOT's refinement alone), from the recipe's own first step.
# (The ablations of SHOT's terms and of the first step's adversary were measured without that term, at
# commit 38412c3: p3/checkpoints/study/usps_shot_*, docs/p3-studies.md.)
# Needs RUNS_DIR/usps_dann-plus-phase1_s0 from bench/p3_train_all.sh.
# Then: python bench/p3_study.py RUNS_DIR/usps_dann-plus_s*/ RUNS_DIR/usps_ablate_*/ --spread usps_dann-plus_s
#   (the trailing slashes leave out the runs' .log files)
# Usage: bash bench/p3_usps_study.sh DIGITS_DIR RUNS_DIR   (DIGITS_DIR holds mnistm/ and usps/)
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash bench/p3_usps_study.sh DIGITS_DIR RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="$1" R="$2"
if [ ! -f "$R/usps_dann-plus-phase1_s0/best.pt" ]; then
  echo "error: $R/usps_dann-plus-phase1_s0/best.pt not found (run bench/p3_train_all.sh DIGITS_DIR RUNS_DIR usps first)" >&2
  exit 2
fi
. "$HERE/bench/p3_recipes.sh"  # the DANN+ recipes' flags
python3 "$HERE/hw2lib/launch.py" p3.refine --init-from "$R/usps_dann-plus-phase1_s0/best.pt" --target "$D/usps" \
  --out-dir "$R/usps_ablate_no-consistency" "${USPS_REFINE[@]}" --seed 0 --consistency 0
