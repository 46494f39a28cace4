"""Train the next P1 model for a given number of minutes, and bring back only what fits a copy home.

    python recipes/gpu_train.py --data hw2_data/digits/mnistm --classifier Classifier.pth --out OUT --minutes 8 \
        [-- p1.train flags…]

A GPU is lent for minutes at a time, so the run is sized to them: a calibration burst of ``p1.train``
(``--calibrate`` steps, its first ``--calibrate`` / 4 not counted: data loading and kernel warm-up)
measures the seconds per step, and the run proper gets as many steps as ``--minutes`` hold after
its two monitor evaluations (at the middle and the end: the grader's LeNet and our Fréchet distance,
with the model alone and with the shipped guidance), so its cosine learning rate ends on time.

``OUT`` receives ``model.pt`` (the last EMA, fp16: what ``hw2_1.sh`` loads), ``best.pt`` (the
monitor's pick), ``metrics.jsonl``, ``record.jsonl`` and ``report.md``; the optimiser state
(``last.pt``) and the calibration are removed, so OUT stays under ``--max-mib``. Defaults (the
flags after ``--`` replace them one by one): a fresh (80, 160)-channel UNet with four middle blocks
(5.72 M parameters; one network evaluation costs 1.33× the shipped model's on the 2-core CPU by
``bench/p1_forward_cost.py``, so ``hw2_1.sh`` stays under 2× its time there), min-SNR-5 loss, bf16
autocast (on a GPU without bf16, a T4 or V100, ``p1.train`` warns and trains in fp32: the calibration
then times fp32 steps, so the budget still holds), batches of 256.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hw2lib.metrics_log import read_metrics  # noqa: E402

DEFAULTS = {
    "--channels": ["80", "160"],
    "--mid-blocks": ["4"],
    "--batch-size": ["256"],
    "--lr": ["4e-4"],
    "--warmup": ["200"],
    "--ema-decay": ["0.9995"],
    "--min-snr-gamma": ["5"],
    "--seed": ["0"],
}
EVAL_SECONDS_GUESS = 30.0  # one monitor evaluation where it cannot be measured beforehand (a GPU: a few s)


def with_defaults(flags: list[str]) -> list[str]:
    """``flags`` plus every default it does not name (``--bf16`` is a switch: on unless ``--no-bf16``)."""
    out = list(flags)
    for name, values in DEFAULTS.items():
        if name not in flags:
            out += [name, *values]
    if "--no-bf16" in out:
        out.remove("--no-bf16")
    elif "--bf16" not in out:
        out.append("--bf16")
    return out


def p1_train(argv: list) -> None:
    cmd = [sys.executable, str(REPO / "hw2lib" / "launch.py"), "p1.train", *map(str, argv)]
    subprocess.run(cmd, check=True)


def seconds_per_step(log: Path, calibrate: int) -> float:
    """From the calibration's metrics: the time of its last 3/4 over the steps they took."""
    rows = {r["step"]: r["elapsed_s"] for r in read_metrics(log)}
    start = calibrate // 4
    return (rows[calibrate] - rows[start]) / (calibrate - start)


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ours, flags = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(
        prog="python recipes/gpu_train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="MNIST-M folder in the course layout")
    p.add_argument("--classifier", required=True, help="the grader's LeNet (Classifier.pth) for the monitor")
    p.add_argument("--out", required=True, help="output folder (created; must not hold a run already)")
    p.add_argument("--minutes", type=float, required=True, help="wall time for calibration and training")
    p.add_argument("--calibrate", type=int, default=40, help="steps of the calibration burst (≥ 4)")
    p.add_argument("--eval-per-class", type=int, default=50, help="digits per class in each monitor evaluation")
    p.add_argument("--max-mib", type=float, default=64.0, help="size OUT must stay under")
    args = p.parse_args(ours)
    if args.calibrate < 4 or args.calibrate % 4 or args.minutes <= 0:
        p.error("--calibrate must be a positive multiple of 4 and --minutes positive")
    out = Path(args.out)
    if (out / "model.pt").exists():
        p.error(f"{out} already holds a run (model.pt); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    flags = with_defaults(flags)
    monitor = ["--classifier", args.classifier, "--real", args.data, "--eval-per-class", args.eval_per_class]
    common = ["--data-root", args.data, *flags]

    calib = out / "calibrate"
    tick = time.monotonic()
    p1_train(
        [
            *common,
            "--out-dir",
            calib,
            "--steps",
            10**6,
            "--stop-after",
            args.calibrate,
            "--log-every",
            args.calibrate // 4,
            "--save-every",
            10**6,
        ]
    )
    per_step = seconds_per_step(calib / "metrics.jsonl", args.calibrate)
    start_cost = time.monotonic() - tick - per_step * args.calibrate  # loading data, building the model
    shutil.rmtree(calib)
    left = args.minutes * 60 - (time.monotonic() - began) - start_cost - 2 * EVAL_SECONDS_GUESS
    steps = max(2, int(left / per_step) // 2 * 2)
    run = out / "run"
    p1_train([*common, *monitor, "--out-dir", run, "--steps", steps, "--eval-every", steps // 2, "--save-every", steps])
    for name in ("model.pt", "best.pt", "metrics.jsonl", "record.jsonl"):
        if (run / name).exists():
            shutil.move(str(run / name), out / name)
    shutil.rmtree(run)  # last.pt: the optimiser state does not travel
    evaluations = read_metrics(out / "metrics.jsonl", having="eval_score")
    write_report(out, args, flags, per_step, steps, time.monotonic() - began, evaluations)
    size = folder_mib(out)
    if size > args.max_mib:
        sys.exit(f"error: {out} holds {size:.1f} MiB, over --max-mib {args.max_mib:g}")
    print(f"{out}: {steps} steps at {per_step:.3f} s/step, {size:.1f} MiB")


def write_report(out: Path, args, flags: list[str], per_step: float, steps: int, wall: float, evaluations) -> None:
    lines = [
        "# P1 training on the lent machine",
        "",
        f"- budget {args.minutes:g} min; wall {wall / 60:.1f} min; calibration {per_step:.4f} s/step → {steps} steps",
        f"- p1.train flags: `{' '.join(map(str, flags))}`",
        "",
        "| step | alone: accuracy | alone: Fréchet | shipped: accuracy | shipped: Fréchet | floor | score |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in evaluations:
        lines.append(
            f"| {e['step']} | {e['eval_s1_accuracy']:.3f} | {e['eval_s1_frechet']:.3f} | "
            f"{e['eval_shipped_accuracy']:.3f} | {e['eval_shipped_frechet']:.3f} | {e['eval_s1_floor']:.3f} | "
            f"{e['eval_score']:.4f} |"
        )
    (out / "budget.json").write_text(json.dumps({"seconds_per_step": per_step, "steps": steps, "wall_s": wall}) + "\n")
    files = sorted({p.name for p in out.iterdir() if p.is_file()} | {"report.md"})
    lines += ["", f"Files: {', '.join(files)}."]
    (out / "report.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
