#!/usr/bin/env bash
# The DANN+ recipe (recipes/p3_recipes.sh) with one thing changed, for either target, one seed per call:
#   recipe             the recipe itself: <t>_dann-plus-first_s<seed>, then <t>_dann-plus_s<seed>
#   no-consistency     its refinement without the mean teacher's confident labels (SHOT alone), from the
#                      recipe's own first step: <t>_ablate_no-consistency_s<seed>
#   no-neighbours      (svhn) the first step without neighbouring digits, then the recipe's refinement
#   entropy            (svhn) the first step with VADA's target entropy (weight 0.1), then SHOT alone
#   sweep              (svhn) the refinement with one flag's value changed: --consistency 0.5 / 2,
#                      --confidence 0.9 / 0.98, --lr 0.001 / 0.01: <t>_sweep_<flag>-<value>_s<seed>
#   target-only-aug    the target's own labels with the first step's backbone, input and augmentation
#                      and both steps' length, no adversary: the fair upper bound
# recipe, no-consistency and sweep refine the recipe's first step of that seed (trained when missing);
# no-neighbours and entropy train a first step of their own; target-only-aug needs none.
# Every run resumes from RUNS_DIR/<name>/last.pt; P3_PRINT_ONLY=1 prints the commands instead.
# Two calls side by side (OMP_NUM_THREADS=1 each on 2 cores) take different seeds, or start once the
# seed's first step is done: both would train it. Then:
#   python studies/p3_study.py RUNS_DIR/<t>_*/ --spread <t>_dann-plus_s <t>_ablate_no-consistency_s …
# Usage: bash studies/p3_ablate.sh DIGITS_DIR RUNS_DIR usps|svhn SEED [ARM…]   (default: every arm of the target)
set -euo pipefail
usage="usage: bash studies/p3_ablate.sh DIGITS_DIR RUNS_DIR usps|svhn SEED [ARM…]"
if [ "$#" -lt 4 ]; then echo "$usage" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="$1"; R="$2"; T="$3"; SEED="$4"; shift 4
. "$HERE/recipes/p3_recipes.sh"  # the DANN+ recipes' flags, py, first_step and refinement
case "$T" in
  usps) ARMS=(recipe no-consistency target-only-aug) ;;
  svhn) ARMS=(recipe no-consistency no-neighbours entropy sweep target-only-aug) ;;
  *) echo "error: the third argument is usps or svhn, not '$T'" >&2; exit 2 ;;
esac
[[ "$SEED" =~ ^(0|[1-9][0-9]*)$ ]] || { echo "error: SEED must be a whole number, not '$SEED'" >&2; exit 2; }
[ -d "$D/mnistm" ] && [ -d "$D/$T" ] || { echo "error: $D must hold mnistm/ and $T/ (the course's hw2_data/digits)" >&2; exit 2; }
for arm in "$@"; do
  known=""
  for a in "${ARMS[@]}"; do [ "$arm" = "$a" ] && known=1; done
  [ -n "$known" ] || { echo "error: no arm '$arm' for $T (arms: ${ARMS[*]})" >&2; exit 2; }
done
[ "$#" -gt 0 ] && ARMS=("$@")

S="_s$SEED" FIRST="$R/${T}_dann-plus-first_s$SEED"
FIRST_DONE=""
first() {  # the recipe's first step, shared by the arms: once a call (a finished run resumes at its end)
  [ -n "$FIRST_DONE" ] || first_step "$T" "$SEED" "$FIRST"
  FIRST_DONE=1
}
refine() { local name="$1"; shift; refinement "$T" "$SEED" "$FIRST" "$R/$name$S" "$@"; }  # NAME [FLAGS…]
for arm in "${ARMS[@]}"; do
  case "$arm" in
    recipe) first; refine "${T}_dann-plus" ;;
    no-consistency) first; refine "${T}_ablate_no-consistency" --consistency 0 ;;
    no-neighbours)
      first_step "$T" "$SEED" "$R/${T}_ablate_no-neighbours-first$S" --neighbours 0
      refinement "$T" "$SEED" "$R/${T}_ablate_no-neighbours-first$S" "$R/${T}_ablate_no-neighbours$S" ;;
    entropy)
      first_step "$T" "$SEED" "$R/${T}_ablate_entropy-first$S" --target-entropy 0.1
      refinement "$T" "$SEED" "$R/${T}_ablate_entropy-first$S" "$R/${T}_ablate_entropy$S" --consistency 0 ;;
    sweep)
      first
      for change in "consistency 0.5" "consistency 2" "confidence 0.9" "confidence 0.98" "lr 0.001" "lr 0.01"; do
        read -r flag value <<< "$change"
        refine "${T}_sweep_$flag-$value" "--$flag" "$value"
      done ;;
    target-only-aug)
      steps=$(($(steps_of "${T^^}_FIRST") + $(steps_of "${T^^}_REFINE")))
      recipe="${T^^}_FIRST[@]"
      py p3.train --source "$D/$T" --target "$D/$T" --out-dir "$R/${T}_target-only-aug$S" "${!recipe}" \
        --steps "$steps" --domain-weight 0 --seed "$SEED" ;;
  esac
done
