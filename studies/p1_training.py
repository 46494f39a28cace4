"""The evaluations a P1 training run logged (``p1.train --classifier … --real …``), as a Markdown table.

    python studies/p1_training.py runs/p1/metrics.jsonl [...] [--guided "s = 5, φ = 1, t ≤ 499"]

One row per evaluation: the grader-LeNet accuracy and our Fréchet distance (with its floor) of the
EMA model alone (s = 1) and with the guidance the run evaluated, and the selection score
``p1.train`` keeps ``best.pt`` by (p1/monitor.py). Rows of runs that logged accuracy only are
skipped. The guided setting's title comes from the logs (``eval_shipped_setting``); logs written
before the monitor recorded it need ``--guided`` (the sampling default of the code that trained).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hw2lib.metrics_log import read_metrics


def guided_title(logs: list[tuple[Path, list[dict]]], given: str | None) -> str:
    """``given``, else the one guided setting every evaluation in ``logs`` ((path, its evaluations) pairs) recorded."""
    if given is not None:
        return given
    labels = {r.get("eval_shipped_setting") for _, records in logs for r in records}
    if None in labels:
        raise SystemExit(
            "error: a log does not record its guided setting (eval_shipped_setting): name it with --guided"
        )
    if len(labels) != 1:
        raise SystemExit(f"error: the logs evaluated different guided settings ({', '.join(sorted(labels))})")
    return labels.pop()


def rows(path: Path, records: list[dict]) -> list[str]:
    """The table rows of one metrics.jsonl's evaluations, one per record."""
    out = []
    for r in records:
        out.append(
            f"| {path.name} | {r['step']:,} | {100 * r['eval_s1_accuracy']:.1f} % "
            f"| {r['eval_s1_frechet']:.2f} ({r['eval_s1_floor']:.2f}) | {100 * r['eval_shipped_accuracy']:.1f} % "
            f"| {r['eval_shipped_frechet']:.2f} ({r['eval_shipped_floor']:.2f}) | {r['eval_score']:.4f} |"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logs", nargs="+", type=Path, help="metrics.jsonl files of p1.train runs")
    p.add_argument("--guided", help="the guided setting the runs evaluated (column title; default: from the logs)")
    args = p.parse_args(argv)
    logs = [(path, read_metrics(path, having="eval_s1_accuracy")) for path in args.logs]
    g = guided_title(logs, args.guided)
    print(f"| log | step | s = 1: accuracy | s = 1: Fréchet (floor) | {g}: accuracy | {g}: Fréchet (floor) | score |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path, records in logs:
        for row in rows(path, records):
            print(row)


if __name__ == "__main__":
    main()
