"""Tables of P3 runs from their logs: what val selection picked, what the second check says, and what a
rule without target labels picks.

    python studies/p3_study.py runs/p3/usps_shot_s0 runs/p3/usps_shot_s1 … [--spread NAME_PREFIX …]

For every run folder (``p3.train --out-dir``) it reads ``metrics.jsonl`` and reports, at the
evaluation with the best target-val accuracy (the checkpoint ``best.pt`` holds): that val accuracy,
the accuracy on the target's *train* split at the same step (labels used only to score: a check that
selection did not touch), and the step. Beside it, what a rule that uses no val label in this run
ships, with its val and train-split accuracy (a refinement's first step was still selected on val): for a ``p3.train`` run, the evaluation with the lowest
``information_score`` (confident *and* class-balanced target predictions); for a ``p3.refine`` run,
whose losses already minimise that score (class balance plus entropy is the score plus log K), the
rule would only restate the objective, so the column shows the last evaluation, named as such. ``--spread PREFIX`` adds mean / min / max over
the runs whose folder name starts with PREFIX (e.g. the seeds of one recipe). Markdown on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hw2lib.metrics_log import read_metrics
from hw2lib.run_record import read_record

INFO_RULE, LAST_RULE = "lowest information score", "last evaluation"


def evaluations(run: Path) -> list[dict]:
    log = run / "metrics.jsonl"
    if not log.is_file():
        raise SystemExit(f"error: {run}: not a run folder (no metrics.jsonl in it)")
    return read_metrics(log, having="val_accuracy")


def summary(run: Path) -> dict:
    evals = evaluations(run)
    if not evals:
        raise SystemExit(f"error: {run / 'metrics.jsonl'}: no evaluations logged")
    best = max(evals, key=lambda r: r["val_accuracy"])  # first of equals, as best.pt keeps the first
    refined = any(s["args"].get("init_from") for s in read_record(run))  # a p3.refine run
    free = evals[-1] if refined else min(evals, key=lambda r: r["information_score"])
    return {
        "rule": LAST_RULE if refined else INFO_RULE,
        "run": run.name,
        "steps": evals[-1]["step"],
        "val": best["val_accuracy"],
        "train": best["target_train_accuracy"],
        "step": best["step"],
        "free_val": free["val_accuracy"],
        "free_train": free["target_train_accuracy"],
        "free_step": free["step"],
        "minutes": evals[-1]["elapsed_s"] / 60,
    }


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="p3.train output folders")
    p.add_argument("--spread", nargs="*", default=[], help="folder-name prefixes to summarise as mean/min/max")
    args = p.parse_args()
    rows = [summary(Path(r)) for r in args.runs]
    print(
        "| run | val (selected) | train split, same checkpoint | step "
        "| no val selection in this run: rule | its val | its train split | its step | minutes |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['run']} | {pct(r['val'])} | {pct(r['train'])} | {r['step']} | {r['rule']} | {pct(r['free_val'])} "
            f"| {pct(r['free_train'])} | {r['free_step']} | {r['minutes']:.1f} |"
        )
    for prefix in args.spread:
        group = [r for r in rows if r["run"].startswith(prefix)]
        if not group:
            raise SystemExit(f"error: no run folder starts with {prefix!r}")
        print(f"\n{prefix}* ({len(group)} runs): mean / min / max")
        for key, name in (("val", "val"), ("train", "train split"), ("free_val", "no val selection in this run, val")):
            values = [r[key] for r in group]
            print(f"- {name}: {pct(sum(values) / len(values))} / {pct(min(values))} / {pct(max(values))}")


if __name__ == "__main__":
    main()
