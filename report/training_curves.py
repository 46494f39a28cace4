"""The report's training curves, from the shipped models' logs: loss and the validation metric against step.

    python report/training_curves.py --p1 logs/p1/shipped --p3 logs/p3/shipped --out figures

* P1 (``<p1>/ddpm_mnistm.stage<N>.metrics.jsonl``, stages in order, steps counted across them):
  the training loss (ε-MSE; min-SNR-weighted from stage 3 on, so its scale changes there), and at
  each monitor evaluation (500 digits) the grader's LeNet accuracy and our Fréchet distance, for the
  model alone (s = 1) and the guided setting that stage's monitor used, beside the floor of 500 real
  digits.
  -> ``<out>/p1/training_curve.png``
* P3 (``<p3>/<target>_dann-plus-first_s<K>`` then ``<target>_dann-plus_s<K>``, K the seed whose
  refinement has the best val, the one that ships): the loss and the target val accuracy of the first
  step and then of the refinement, steps counted across both (the refinement starts from the first
  step's best-val checkpoint, not always its last step). -> ``<out>/p3/training_curve.png``
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hw2lib.metrics_log import read_metrics


def p1_stages(folder: Path) -> list[tuple[int, list[dict]]]:
    """(stage number, its log's rows, the later of repeated steps kept) for every stage log, in order."""
    found = []
    for path in folder.glob("ddpm_mnistm.stage*.metrics.jsonl"):
        rows = {r["step"]: r for r in read_metrics(path)}  # a resumed sitting may log a step twice
        found.append((int(re.search(r"stage(\d+)", path.name).group(1)), [rows[s] for s in sorted(rows)]))
    if not found:
        raise SystemExit(f"error: {folder}: no ddpm_mnistm.stage<N>.metrics.jsonl logs")
    return sorted(found, key=lambda stage: stage[0])


def p1_figure(folder: Path, out: Path) -> None:
    fig, (ax_loss, ax_acc, ax_fd) = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    offset = 0
    for stage, rows in p1_stages(folder):
        steps = [offset + r["step"] for r in rows]
        ax_loss.plot(steps, [r["loss"] for r in rows], lw=0.8, color="tab:blue")
        evals = [r for r in rows if "eval_s1_accuracy" in r]
        at = [offset + r["step"] for r in evals]
        for ax, key, scale in ((ax_acc, "accuracy", 100), (ax_fd, "frechet", 1)):
            ax.plot(at, [scale * r[f"eval_s1_{key}"] for r in evals], "o-", ms=3, color="tab:orange")
            ax.plot(at, [scale * r[f"eval_shipped_{key}"] for r in evals], "o-", ms=3, color="tab:green")
        ax_fd.plot(at, [r["eval_s1_floor"] for r in evals], "--", color="grey")
        offset = steps[-1]
        for ax in (ax_loss, ax_acc, ax_fd):
            ax.axvline(offset, color="lightgrey", lw=0.6)
        ax_loss.annotate(str(stage), (offset, 1), xycoords=("data", "axes fraction"), fontsize=6, ha="right", va="top")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss\n(min-SNR-weighted from stage 3)")
    ax_acc.set_ylabel("LeNet accuracy, %\n(500 digits)")
    ax_fd.set_ylabel("Fréchet distance\n(500 digits)")
    guided = "guided (the setting each stage's monitor used)"
    ax_acc.legend(["model alone (s = 1)", guided], fontsize=7, loc="lower right")
    ax_fd.legend(["model alone (s = 1)", guided, "floor: 500 real digits"], fontsize=7)
    ax_fd.set_xlabel("step, counted across the stages (grey lines: where each stage ends, its number at the top)")
    fig.suptitle("P1: the shipped model's training, stage by stage", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def shipped_seed(logs: Path, target: str) -> str:
    """The seed suffix (``s<K>``) whose refinement reached the best val (the lower seed on a tie)."""
    runs = sorted(logs.glob(f"{target}_dann-plus_s*"), key=lambda p: int(p.name.rsplit("_s", 1)[1]))
    if not runs:
        raise SystemExit(f"error: {logs}: no {target}_dann-plus_s<K> logs")
    best = [max(r["val_accuracy"] for r in read_metrics(p / "metrics.jsonl", having="val_accuracy")) for p in runs]
    return runs[max(range(len(runs)), key=lambda i: (best[i], -i))].name.rsplit("_", 1)[1]


def p3_figure(logs: Path, out: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex="col")
    for col, target in enumerate(("svhn", "usps")):
        seed = shipped_seed(logs, target)
        offset = 0
        for part, colour in (("dann-plus-first", "tab:blue"), ("dann-plus", "tab:red")):
            rows = read_metrics(logs / f"{target}_{part}_{seed}" / "metrics.jsonl")
            evals = [r for r in rows if "val_accuracy" in r]
            axes[0, col].plot([offset + r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8, color=colour)
            axes[1, col].plot(
                [offset + r["step"] for r in evals], [100 * r["val_accuracy"] for r in evals], "o-", ms=2, color=colour
            )
            offset += rows[-1]["step"]
        for ax in axes[:, col]:
            ax.axvline(offset - rows[-1]["step"], color="lightgrey", lw=0.8)
        axes[0, col].set_title(f"MNIST-M → {target.upper()}, DANN+ seed {seed[1:]} (shipped)", fontsize=9)
        axes[1, col].set_xlabel("step (first step, then the refinement)")
    axes[0, 0].set_ylabel("training loss\n(each step's own objective)")
    axes[1, 0].set_ylabel("target val accuracy, %")
    axes[0, 1].legend(["first step (p3.train)", "refinement (p3.refine)"], fontsize=7)
    fig.suptitle("P3: the shipped DANN+ runs", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python report/training_curves.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--p1", type=Path, required=True, help="folder of P1's stage logs (logs/p1/shipped)")
    p.add_argument("--p3", type=Path, required=True, help="folder of P3's shipped run logs (logs/p3/shipped)")
    p.add_argument("--out", type=Path, required=True, help="figures folder: writes p1/ and p3/training_curve.png")
    args = p.parse_args(argv)
    for problem, draw, logs in (("p1", p1_figure, args.p1), ("p3", p3_figure, args.p3)):
        (args.out / problem).mkdir(parents=True, exist_ok=True)
        draw(logs, args.out / problem / "training_curve.png")
        print(f"wrote {args.out / problem / 'training_curve.png'}")


if __name__ == "__main__":
    main()
