#!/usr/bin/env bash
# The runs behind REPORT's SVHN comparisons that one seed cannot carry, two at a time, one thread each:
#   svhn_dann-plus-phase1_s{1,2}, svhn_dann-plus_s{1,2}   the recipe (bench/p3_train_all.sh's commands)
#   svhn_ablate_no-consistency_s{1,2}   its refinement without the teacher's labels, from the same first
#                                       step (seed 0's pair is p3/checkpoints/study/svhn_ablate_no-consistency)
#   svhn_sweep_<flag>-<value>_s1        one seed, one refinement flag changed: --consistency 0.5 / 2,
#                                       --confidence 0.9 / 0.98, --lr 0.001 / 0.01
#   svhn_target-only-aug_s{0,1,2}       trained on SVHN's labels with DANN+'s backbone, input, augmentation
#                                       and length (its two steps' 4,000 + 3,000): the fair upper bound
# Every run resumes from RUNS_DIR/<name>/last.pt; the script can be stopped and started again.
# Then: python bench/p3_study.py RUNS_DIR/svhn_*_s*/ --spread svhn_dann-plus_s svhn_ablate_no-consistency_s svhn_target-only-aug_s
# Usage: bash bench/p3_svhn_seeds_study.sh DIGITS_DIR RUNS_DIR   (DIGITS_DIR holds mnistm/ and svhn/)
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: bash bench/p3_svhn_seeds_study.sh DIGITS_DIR RUNS_DIR" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export D="$1" R="$2" HERE
[ -d "$D/mnistm" ] && [ -d "$D/svhn" ] || { echo "error: $D must hold mnistm/ and svhn/ (the course's hw2_data/digits)" >&2; exit 2; }
mkdir -p "$R"
py() {  # name, module, flags: one run, one thread, its console output in RUNS_DIR/<name>.log
  local name="$1"; shift
  OMP_NUM_THREADS=1 python3 "$HERE/hw2lib/launch.py" "$@" --out-dir "$R/$name" > "$R/$name.log" 2>&1
  echo "done: $name"
}
first() {  # seed: the recipe's first step
  . "$HERE/bench/p3_recipes.sh"
  py "svhn_dann-plus-phase1_s$1" p3.train --source "$D/mnistm" --target "$D/svhn" "${SVHN_FIRST[@]}" --seed "$1"
}
refine() {  # name, seed, then the flags that change the recipe's refinement
  local name="$1" seed="$2"; shift 2
  . "$HERE/bench/p3_recipes.sh"
  py "$name" p3.refine --init-from "$R/svhn_dann-plus-phase1_s$seed/best.pt" --target "$D/svhn" \
    "${SVHN_REFINE[@]}" --seed "$seed" "$@"
}
target_only() {  # seed: SVHN's labels, DANN+'s first-step flags without the adversary, both steps' length
  . "$HERE/bench/p3_recipes.sh"
  py "svhn_target-only-aug_s$1" p3.train --source "$D/svhn" --target "$D/svhn" "${SVHN_FIRST[@]}" \
    --steps 7000 --domain-weight 0 --seed "$1"
}
seed_pair() {  # seed: the recipe and its no-consistency ablation from one first step
  first "$1" && refine "svhn_dann-plus_s$1" "$1" && refine "svhn_ablate_no-consistency_s$1" "$1" --consistency 0
}
sweep() {  # one seed (1), one flag at a time
  refine svhn_sweep_consistency-0.5_s1 1 --consistency 0.5 && refine svhn_sweep_consistency-2_s1 1 --consistency 2 &&
    refine svhn_sweep_confidence-0.9_s1 1 --confidence 0.9 && refine svhn_sweep_confidence-0.98_s1 1 --confidence 0.98 &&
    refine svhn_sweep_lr-0.001_s1 1 --lr 0.001 && refine svhn_sweep_lr-0.01_s1 1 --lr 0.01
}
export -f py first refine target_only seed_pair sweep
printf '%s\n' \
  "seed_pair 1 && sweep" \
  "seed_pair 2 && target_only 0 && target_only 1 && target_only 2" |
  xargs -P 2 -I{} bash -c '{}'
