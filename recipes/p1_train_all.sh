#!/usr/bin/env bash
# Remake P1's shipped checkpoints from nothing: every command that made them, in order, exactly as each ran.
# Usage: bash recipes/p1_train_all.sh DATA RUNS CLASSIFIER
#   DATA holds mnistm/ (course layout); RUNS receives one folder per stage; CLASSIFIER is the grader's
#   LeNet (the course's Classifier.pth), which stages 3 on use to keep their best EMA.
# Ends in p1/checkpoints/ddpm_mnistm.pt (the stage-13 EMA) and p1/checkpoints/features_mnistm.pt, then
# rehashes the manifest. Every run resumes from RUNS/<stage>/last.pt, so the script can be stopped and
# started again across sittings: a finished stage is not retrained. Wall time on a 2-core CPU: about
# 18 hours (stages 1–9 about 13 h at 0.55–3 s a step, 11–13 about 4.5 h); p1.train takes a GPU when present.
#
# P1_PRINT_ONLY=1 prints every command instead of running it (as if RUNS were empty).
#
# Some stages ran in legs with different --steps (the first legs' schedules were cut or lengthened
# when resumed); their legs are replayed with --stop-after, so each stage's learning rate runs exactly
# as its log (logs/p1/shipped/ddpm_mnistm.stage*.metrics.jsonl) shows.
set -euo pipefail
if [ "$#" -ne 3 ]; then echo "usage: bash recipes/p1_train_all.sh DATA RUNS CLASSIFIER" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="$1"; R="$2"; LENET="$3"
[ -d "$D/mnistm" ] || { echo "error: $D/mnistm: no such directory (DATA is the course's hw2_data/digits)" >&2; exit 2; }
[ -f "$LENET" ] || { echo "error: $LENET: no such file (CLASSIFIER is the course's Classifier.pth)" >&2; exit 2; }
run() { if [ -n "${P1_PRINT_ONLY:-}" ]; then echo "$*"; else "$@"; fi; }
py() { run python3 "$HERE/hw2lib/launch.py" "$@"; }  # this checkout's modules, wherever it runs from
at() {  # the step RUNS/$1/last.pt has reached (0 before the run starts)
  [ -n "${P1_PRINT_ONLY:-}" ] && { echo 0; return; }
  python3 - "$R/$1/last.pt" <<'PY'
import os, sys, torch
print(torch.load(sys.argv[1], map_location="cpu", weights_only=True)["step"] if os.path.exists(sys.argv[1]) else 0)
PY
}
declare -A SCHEDULE  # run name → the --steps of its previous leg
leg() {  # leg NAME UNTIL STEPS [flags…]: run p1.train with schedule STEPS until step UNTIL (skipped once there)
  local name="$1" until="$2" steps="$3"; shift 3
  local now; now="$(at "$name")"
  local before="${SCHEDULE[$name]:-$steps}"; SCHEDULE[$name]="$steps"
  [ "$now" -ge "$until" ] && return 0
  local stop=(); [ "$until" -lt "$steps" ] && stop=(--stop-after "$((until - now))")
  local change=(); [ "$before" != "$steps" ] && change=(--allow-changed-args)  # a new schedule, recorded as such
  py p1.train --data-root "$D/mnistm" --out-dir "$R/$name" --steps "$steps" "$@" "${stop[@]}" "${change[@]}"
}
MONITOR=(--classifier "$LENET" --real "$D/mnistm")
LATER=(--lr 4e-4 --warmup 100 --ema-decay 0.9995 --min-snr-gamma 5 --bf16)  # stages 3–9

# 1–2: the simple ε-MSE loss, EMA 0.999, 2.9 M parameters (p1.train's defaults are stage 1's settings)
leg p1 250 6000
leg p1 1500 3500
leg p1 5000 5000
leg p1_ft 7000 7000 --init-from "$R/p1/model.pt" --lr 4e-4 --warmup 100 --seed 1
# 3–9: min-SNR-γ = 5, bf16 autocast, EMA 0.9995; the monitor keeps the best EMA (best.pt)
S3=(--init-from "$R/p1_ft/model.pt" "${LATER[@]}" --seed 2 "${MONITOR[@]}" --eval-every 500)
leg p1_snr 250 5000 "${S3[@]}"
leg p1_snr 500 3000 "${S3[@]}"
leg p1_snr 2000 2000 "${S3[@]}"
S4=(--init-from "$R/p1_snr/best.pt" "${LATER[@]}" --seed 3 "${MONITOR[@]}" --eval-every 1000)
leg p1_s4 250 4500 "${S4[@]}"
leg p1_s4 1250 3500 "${S4[@]}"
leg p1_s4 4000 4000 "${S4[@]}"
S5=(--init-from "$R/p1_s4/best.pt" "${LATER[@]}" --seed 4 "${MONITOR[@]}" --eval-every 1000)
leg p1_s5 250 4500 "${S5[@]}"
leg p1_s5 4000 4000 "${S5[@]}"
S6=(--init-from "$R/p1_s5/best.pt" "${LATER[@]}" --seed 5 "${MONITOR[@]}" --eval-every 1000)
leg p1_s6 250 3500 "${S6[@]}"
leg p1_s6 3000 3000 "${S6[@]}"
leg p1_s7 3500 3500 --init-from "$R/p1_s6/best.pt" "${LATER[@]}" --seed 6 "${MONITOR[@]}" --eval-every 1750
leg p1_s8 4000 4000 --init-from "$R/p1_s7/best.pt" "${LATER[@]}" --seed 7 "${MONITOR[@]}" --eval-every 2000
leg p1_s9 6000 6000 --init-from "$R/p1_s8/best.pt" "${LATER[@]}" --lr 3e-4 --seed 8 "${MONITOR[@]}" --eval-every 2000
# 11–13: stage 9 deepened to four middle blocks (3.66 M parameters; the new blocks start as the identity)
[ -f "$R/grown4.pt" ] && [ -z "${P1_PRINT_ONLY:-}" ] || py p1.grow "$R/p1_s9/best.pt" "$R/grown4.pt" --mid-blocks 4
GROWN=(--mid-blocks 4 --warmup 100 --ema-decay 0.9995 --min-snr-gamma 5 --bf16 "${MONITOR[@]}")
leg p1_s11 250 5000 --init-from "$R/grown4.pt" "${GROWN[@]}" --lr 3e-4 --seed 10 --eval-every 2000
leg p1_s11 6000 6000 --init-from "$R/grown4.pt" "${GROWN[@]}" --lr 3e-4 --seed 10 --eval-every 2000
leg p1_s12 3000 3000 --init-from "$R/p1_s11/best.pt" "${GROWN[@]}" --lr 3e-4 --seed 12 --eval-every 1000
leg p1_s13 3000 3000 --init-from "$R/p1_s12/best.pt" "${GROWN[@]}" --lr 2e-4 --seed 13 --eval-every 1000
run cp "$R/p1_s13/best.pt" "$HERE/p1/checkpoints/ddpm_mnistm.pt"

# the Fréchet distance's feature network: the digit CNN trained on labelled MNIST-M for 1,500 steps (the
# shipped file came from an earlier version of this trainer with these settings: a remade one is an
# equivalent network, not the same bytes, so distances measured with it move in their last digits)
[ -f "$R/features_mnistm/best.pt" ] && [ -z "${P1_PRINT_ONLY:-}" ] || py p3.train --source "$D/mnistm" --target "$D/mnistm" \
  --out-dir "$R/features_mnistm" --steps 1500 --width 32 --domain-weight 0
run cp "$R/features_mnistm/best.pt" "$HERE/p1/checkpoints/features_mnistm.pt"
run bash "$HERE/hw2_download.sh" --rehash
