"""Every P1 model version measured, as one table: how it was trained and what its digits scored.

    python studies/p1_versions.py [--repo .]

Each row is one checkpoint: its training log (steps and peak learning rate, read from the log) and
its sweep log (``studies/p1_sweep.py --log``: 1000 digits per setting, the grader's LeNet and our
Fréchet distance, floor 2.15). Columns: the model alone (s = 1) and the shipped guidance (s = 3,
φ = 1, t ≤ 499) at starting seed 0 and, where all five were logged, the mean over seeds 0–4.
Stage 13 (bold) ships; stages 1–9 and 11–13 are its lineage (``recipes/p1_train_all.sh``); the
study checkpoints of stages 10–16 were last held in git at commit a00e222.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from p1_front import label

ALONE, GUIDED = "dpm++2m 10 s=1", "dpm++2m 10 s=3 φ=1 t∈[0,499]"
# (version, what it continued from, training log, sweep log, checkpoint name in the sweep log)
VERSIONS = [
    ("2", "stage 1 (5,000 steps, simple loss)", "shipped/ddpm_mnistm.stage2", "studies/front_12k.jsonl", None),
    (
        "3",
        "stage 2; min-SNR-5, bf16 from here",
        "shipped/ddpm_mnistm.stage3",
        "studies/front_stage3.jsonl",
        "p1_best.pt",
    ),
    ("4", "stage 3", "shipped/ddpm_mnistm.stage4", "studies/front_stage4.jsonl", None),
    ("5", "stage 4", "shipped/ddpm_mnistm.stage5", "studies/front_stage5.jsonl", None),
    ("6", "stage 5", "shipped/ddpm_mnistm.stage6", "studies/front_stage6.jsonl", None),
    ("7", "stage 6", "shipped/ddpm_mnistm.stage7", "studies/front_stage7.jsonl", None),
    ("8", "stage 7", "shipped/ddpm_mnistm.stage8", "studies/front_stage8.jsonl", None),
    ("9", "stage 8", "shipped/ddpm_mnistm.stage9", "studies/front.jsonl", None),
    ("10", "stage 9", "studies/stage10", "studies/stage10.front.jsonl", "best.pt"),
    (
        "11",
        "stage 9 grown to 4 middle blocks",
        "shipped/ddpm_mnistm.stage11",
        "studies/stage11.front.jsonl",
        "s11_step4000.pt",
    ),
    ("12", "stage 11", "shipped/ddpm_mnistm.stage12", "studies/stage12.front.jsonl", "s12_best.pt"),
    ("13", "stage 12", "shipped/ddpm_mnistm.stage13", "shipped/stage13.front.jsonl", "s13_best.pt"),
    ("14 (step 1,500)", "stage 13", "studies/stage14", "studies/stage14_step1500.front.jsonl", None),
    ("14", "stage 13", "studies/stage14", "studies/stage14.front.jsonl", None),
    ("15", "stage 14", "studies/stage15", "studies/stage15.front.jsonl", None),
    ("16", "stage 15", "studies/stage16", "studies/stage16.front.jsonl", None),
]
SHIPPED = "13"


def training(log: Path, until: Optional[int] = None) -> tuple[int, float]:
    """(last step, peak learning rate) of a training log (up to step ``until``)."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if until is None or r["step"] <= until]
    return rows[-1]["step"], max(r["lr"] for r in rows)


def sweep(log: Path, checkpoint: Optional[str]) -> dict[str, dict[int, dict]]:
    """setting label → seed → row (a later row replaces an earlier one; unseeded rows are seed 0)."""
    out: dict[str, dict[int, dict]] = {}
    for line in log.read_text().splitlines():
        row = json.loads(line)
        if checkpoint is not None and row.get("checkpoint") not in (checkpoint, None):
            continue
        if row.get("digits", 1000) == 1000 and row.get("eta", 0) == 0:
            out.setdefault(label(row), {})[row.get("seed") or 0] = row
    return out


def cell(rows: dict[int, dict], seeds: tuple[int, ...]) -> str:
    if not all(s in rows for s in seeds):
        return "—"
    acc = sum(rows[s]["accuracy"] for s in seeds) / len(seeds)
    dist = sum(rows[s]["frechet"] for s in seeds) / len(seeds)
    worst = min(rows[s]["worst_accuracy"] for s in seeds) if all("worst_accuracy" in rows[s] for s in seeds) else None
    tail = f" (≥ {100 * worst:.0f} %)" if worst is not None and len(seeds) > 1 else ""
    return f"{100 * acc:.{1 if len(seeds) == 1 else 2}f} % / {dist:.2f}{tail}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python studies/p1_versions.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="the repository root")
    args = p.parse_args(argv)
    logs = args.repo / "logs" / "p1"
    print(
        "| stage | continues | steps | peak lr | alone, seed 0 | alone, seeds 0–4 | s = 3, seed 0 | s = 3, seeds 0–4 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for version, source, train_log, sweep_log, checkpoint in VERSIONS:
        until = 1500 if "1,500" in version else None
        steps, lr = training(logs / f"{train_log}.metrics.jsonl", until)
        rows = sweep(logs / sweep_log, checkpoint)
        alone, guided = rows.get(ALONE, {}), rows.get(GUIDED, {})
        name = f"**{version}**" if version == SHIPPED else version
        print(
            f"| {name} | {source} | {steps:,} | {lr:g} | {cell(alone, (0,))} | {cell(alone, (0, 1, 2, 3, 4))} | "
            f"{cell(guided, (0,))} | {cell(guided, (0, 1, 2, 3, 4))} |"
        )


if __name__ == "__main__":
    main()
