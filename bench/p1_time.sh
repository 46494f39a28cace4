#!/usr/bin/env bash
# Time hw2_1.sh of this checkout and of another one (e.g. the previous release) side by side, in one run
# on one machine, alternating, and check that reruns write byte-identical PNGs.
# Usage: bash bench/p1_time.sh OTHER_CHECKOUT [ROUNDS]   (e.g. git worktree add /tmp/prev v1 first)
#   Uses whatever python3 is first on PATH (PATH="$(bash bench/grader_env.sh):$PATH" for the grader's versions).
set -euo pipefail
if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then echo "usage: bash bench/p1_time.sh OTHER_CHECKOUT [ROUNDS]" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OTHER="$(cd "$1" && pwd)"; ROUNDS="${2:-2}"
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
cd /  # releases before hw2lib/launch.py ran python -m, which puts the working directory first on sys.path
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(python3 -c 'import torch; print("torch", torch.__version__)')"
echo "| round | this checkout (s) | $(basename "$OTHER") (s) |"
echo "|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  times=()
  for repo in "$HERE" "$OTHER"; do
    out="$WORK/$(basename "$repo")_$round"
    start=$(date +%s.%N)
    bash "$repo/hw2_1.sh" "$out" > /dev/null 2>&1
    times+=("$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")")
  done
  echo "| $round | ${times[0]} | ${times[1]} |"
done
for repo in "$HERE" "$OTHER"; do
  name="$(basename "$repo")"
  first="$(cd "$WORK/${name}_1" && cat ./*.png | sha256sum | cut -c1-16)"
  for round in $(seq 2 "$ROUNDS"); do
    again="$(cd "$WORK/${name}_$round" && cat ./*.png | sha256sum | cut -c1-16)"
    [ "$first" = "$again" ] || { echo "error: $name: round $round wrote different PNGs" >&2; exit 1; }
  done
  echo "$name: $(ls "$WORK/${name}_1" | wc -l) files, identical in every round (sha256 of all PNGs $first…)"
done
