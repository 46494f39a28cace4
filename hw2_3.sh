#!/usr/bin/env bash
# P3: DANN digit classification. Usage: bash hw2_3.sh TEST_DIR OUT_CSV   (domain: named in the path, else all-grey images = usps, all-colour = svhn)
set -euo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: bash hw2_3.sh TEST_DIR OUT_CSV" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$HERE/hw2lib/launch.py" p3.predict -- "$1" "$2"
