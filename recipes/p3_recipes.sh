# The DANN+ recipes' flags (bash arrays), sourced by bench/p3_train_all.sh, which ships them, and by
# the ablation scripts bench/p3_svhn_study.sh and bench/p3_usps_study.sh, which change one ingredient
# of exactly these (a later flag overrides an earlier one: --consistency 0, --neighbours 0).
# First step: p3.train from MNIST-M; refinement: p3.refine from the first step's best.pt.
# shellcheck disable=SC2034  # used by the scripts that source this file
USPS_FIRST=(--steps 500 --normalize image --per-domain-bn --augment 0 --eval-every 100)
USPS_REFINE=(--steps 2000 --eval-every 100 --consistency 1.0)
SVHN_FIRST=(--steps 4000 --eval-every 250 --width 64 --normalize image --per-domain-bn --augment 0.5 --neighbours 0.5)
SVHN_REFINE=(--steps 3000 --lr 0.003 --eval-every 100 --consistency 1.0)
