"""The evaluations a P1 training run logged (``p1.train --classifier … --real …``), as a Markdown table.

    python bench/p1_training.py runs/p1/metrics.jsonl

One row per evaluation: the grader-LeNet accuracy and our Fréchet distance (with its floor) of the
EMA model alone (s = 1) and with the guidance the run was told (s = 5, φ = 1 at every step), and the selection score ``p1.train`` keeps
``best.pt`` by (p1/monitor.py). Rows of runs that logged accuracy only are skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python bench/p1_training.py METRICS_JSONL [...]")
    print(
        "| log | step | s = 1: accuracy | s = 1: Fréchet (floor) | s = 5, φ = 1: accuracy | s = 5, φ = 1: Fréchet (floor) | score |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in map(Path, sys.argv[1:]):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if "eval_s1_accuracy" not in r:
                continue
            print(
                f"| {path.name} | {r['step']:,} | {100 * r['eval_s1_accuracy']:.1f} % "
                f"| {r['eval_s1_frechet']:.2f} ({r['eval_s1_floor']:.2f}) | {100 * r['eval_shipped_accuracy']:.1f} % "
                f"| {r['eval_shipped_frechet']:.2f} ({r['eval_shipped_floor']:.2f}) | {r['eval_score']:.4f} |"
            )


if __name__ == "__main__":
    main()
