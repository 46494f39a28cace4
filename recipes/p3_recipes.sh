# The DANN+ recipes (bash arrays of flags) and the two commands that run them, sourced by
# recipes/p3_train_all.sh, which ships them, and by studies/p3_ablate.sh, which changes one thing in
# exactly these (a later flag overrides an earlier one: --consistency 0, --neighbours 0).
# The first step (p3.train from MNIST-M, run <target>_dann-plus-first_s<seed>), then the refinement
# (p3.refine on the target alone, from the first step's best.pt, run <target>_dann-plus_s<seed>).
# The sourcing script sets HERE (the checkout) and D (the course's hw2_data/digits).
# shellcheck disable=SC2034  # the arrays are used by the scripts that source this file
USPS_FIRST=(--steps 500 --normalize image --per-domain-bn --augment 0 --eval-every 100)
USPS_REFINE=(--steps 2000 --eval-every 100 --consistency 1.0)
SVHN_FIRST=(--steps 4000 --eval-every 250 --width 64 --normalize image --per-domain-bn --augment 0.5 --neighbours 0.5)
SVHN_REFINE=(--steps 3000 --lr 0.003 --eval-every 100 --consistency 1.0)

py() {  # MODULE FLAGS…: this checkout's module, wherever it runs from; P3_PRINT_ONLY=1 prints the command instead
  if [ -n "${P3_PRINT_ONLY:-}" ]; then echo "$*"; else python3 "$HERE/hw2lib/launch.py" "$@"; fi
}
first_step() {  # TARGET SEED OUT_DIR [FLAGS…]: the recipe's first step for usps|svhn, then FLAGS
  local target="$1" seed="$2" out="$3"; shift 3
  local -n recipe="${target^^}_FIRST"
  py p3.train --source "$D/mnistm" --target "$D/$target" --out-dir "$out" "${recipe[@]}" --seed "$seed" "$@"
}
refinement() {  # TARGET SEED FIRST_STEP_DIR OUT_DIR [FLAGS…]: the recipe's refinement from FIRST_STEP_DIR/best.pt
  local target="$1" seed="$2" first="$3" out="$4"; shift 4
  local -n recipe="${target^^}_REFINE"
  py p3.refine --init-from "$first/best.pt" --target "$D/$target" --out-dir "$out" "${recipe[@]}" --seed "$seed" "$@"
}
steps_of() {  # ARRAY_NAME: the value of the recipe's --steps
  local -n recipe="$1"; local i
  for ((i = 0; i < ${#recipe[@]} - 1; i++)); do [ "${recipe[i]}" = --steps ] && echo "${recipe[i + 1]}" && return; done
  return 1
}
