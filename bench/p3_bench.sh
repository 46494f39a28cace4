#!/usr/bin/env bash
# Time hw2_3.sh on the first N images of a digits folder's val split and score its CSV against val.csv.
# Usage: bash bench/p3_bench.sh DOMAIN_DIR {usps|svhn} [N=2000]
#   DOMAIN_DIR is e.g. hw2_data/digits/usps or hw2_data/digits/svhn (course layout: data/, val.csv).
#   The images are linked into a temporary folder named after the domain, as hw2_3.sh reads it from the path.
set -euo pipefail
if [ "$#" -lt 2 ]; then echo "usage: bash bench/p3_bench.sh DOMAIN_DIR {usps|svhn} [N]" >&2; exit 2; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="$(cd "$1" && pwd)"; T="$2"; N="${3:-2000}"
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/$T"
sed -n "2,$((N + 1))p" "$D/val.csv" > "$WORK/labels.csv"
cut -d, -f1 "$WORK/labels.csv" | while read -r f; do ln -s "$D/data/$f" "$WORK/$T/$f"; done
start=$(date +%s.%N)
bash "$HERE/hw2_3.sh" "$WORK/$T" "$WORK/pred.csv" >/dev/null
end=$(date +%s.%N)
python3 - "$WORK/labels.csv" "$WORK/pred.csv" "$start" "$end" "$T" <<'PY'
import csv, sys
truth = dict(row for row in csv.reader(open(sys.argv[1])))
pred = list(csv.reader(open(sys.argv[2])))[1:]
correct = sum(truth[name] == label for name, label in pred)
print(f"{sys.argv[5]}: {len(pred)} images in {float(sys.argv[4]) - float(sys.argv[3]):.1f} s, accuracy {100 * correct / len(pred):.2f}%")
PY
