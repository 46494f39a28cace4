"""The grader's path on a GPU, checked against the CPU on the same machine, with a Markdown report.

    python bench/gpu_check.py --digits hw2_data/digits --classifier Classifier.pth --out OUT [--device cuda]

What it runs (each entry point in-process through its ``main``, so that wall time and
``torch.cuda.max_memory_allocated`` belong to that step alone; the bash entry points themselves
once more as the grader calls them):

* P1: ``hw2_1.sh``'s generator on the device and on the CPU; grader-LeNet accuracy of both and the
  share of byte-identical PNGs.
* P2: ``hw2_2.sh``'s sampler with a random-weight face UNet (the course's weights are not ours):
  peak memory of the default batch (10 noises at 256×256) over ``--p2-memory-steps`` DDIM steps
  (every step costs the same), and device-vs-CPU MSE of full 50-step runs at ``--p2-size``.
* P3: ``hw2_3.sh`` on the USPS and SVHN val folders on the device and on the CPU: accuracy and the
  share of identical labels (target ≥ 99.9 %).
* Training: a short burst of ``p1.train`` and ``p3.train`` on the device.

Writes ``OUT/report.md`` (and the outputs it compared) and exits 1 when a check fails.
``--device cpu`` runs the same checks with the CPU on both sides: that is how the report's
format is tested where there is no GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # golden_unet: the test weights

from gpu_probe import (  # noqa: E402
    measured,
    p2_memory_check,
    read_labels,
    read_pngs,
    reported_device,
    reset_backend_flags,
    save_noises,
    tame_face_unet,
)

from hw2lib.metrics_log import read_metrics  # noqa: E402
from p1 import generate as p1_generate  # noqa: E402
from p1 import train as p1_train  # noqa: E402
from p1.classifier import load_lenet  # noqa: E402
from p1.evaluate import read_folder, score_digits  # noqa: E402
from p2 import sample as p2_sample  # noqa: E402
from p3 import predict as p3_predict  # noqa: E402
from p3 import train as p3_train  # noqa: E402
from p3.table import DATA_FOLDERS  # noqa: E402

P2_MEMORY_LIMIT_MB = 9 * 1024  # the 2080 Ti's 11 GB, less headroom
P3_LABELS_MAY_DIFFER = 2  # per folder: a digit on the decision boundary may flip between float kernels
P3_BASELINES = {"usps": 0.76, "svhn": 0.40}  # the course's public baselines


@dataclass
class Row:
    check: str
    seconds: float = float("nan")
    peak_mb: float = float("nan")
    result: str = ""
    ok: bool = False

    def markdown(self) -> str:
        fmt = lambda v, spec: "—" if v != v else format(v, spec)
        return f"| {self.check} | {fmt(self.seconds, '.1f')} | {fmt(self.peak_mb, ',.0f')} | {self.result} | {'yes' if self.ok else '**NO**'} |"


def check_p1(args, device, cpu, out: Path) -> list[Row]:
    """hw2_1.sh's generator on the device and on the CPU, scored by the grader's LeNet (p1.evaluate)."""
    lenet, rows, accuracies = load_lenet(args.classifier), [], {}
    for name, dev in (("device", device), ("cpu", cpu)):
        folder = out / f"p1_{name}"
        argv = [str(folder), "--device", str(dev), "--per-class", str(args.p1_per_class)]
        seconds, peak = measured(dev, lambda: p1_generate.main(argv))
        images, labels = read_folder(folder)
        scores = score_digits(images, labels, lenet)
        accuracies[name] = scores.accuracy
        worst = min(scores.per_digit.values())
        result = f"{len(labels)} files, LeNet accuracy {100 * scores.accuracy:.2f} % (worst digit {100 * worst:.0f} %)"
        rows.append(
            Row(f"P1 hw2_1.sh generator on {dev}", seconds, peak, result, len(labels) == 10 * args.p1_per_class)
        )
    a, b = read_pngs(out / "p1_device"), read_pngs(out / "p1_cpu")
    same = np.mean([np.array_equal(a[k], b[k]) for k in a])
    max_diff = max(np.abs(a[k] - b[k]).max() for k in a)
    delta = accuracies["device"] - accuracies["cpu"]
    result = (
        f"{100 * same:.1f} % identical PNGs, max |Δ| {max_diff:.0f} grey levels, accuracy Δ {100 * delta:+.2f} points"
    )
    return rows + [Row("P1 device vs CPU", result=result, ok=abs(delta) <= 0.005)]


def check_p2(args, device, cpu, out: Path) -> list[Row]:
    """Peak memory of hw2_2.sh's default batch at 256×256, then device vs CPU on small images."""
    unet_path = out / "p2_unet_random.pt"
    tame_face_unet(unet_path)
    save_noises(out / "p2_noise_memory", 10, args.p2_memory_size, seed=1)
    memory_noises = torch.stack(list(p2_sample.load_noises(out / "p2_noise_memory").values()))
    unet = p2_sample.load_unet(unet_path, device)
    seconds, peak, steps = p2_memory_check(unet, memory_noises, device, args.p2_memory_steps)
    del unet
    per_step = seconds / steps
    rows = [
        Row(
            f"P2 default batch (10 × {args.p2_memory_size}²), {steps} DDIM steps",
            seconds,
            peak,
            f"{per_step:.2f} s/step → {50 * per_step:.0f} s for 50 steps; memory limit {P2_MEMORY_LIMIT_MB:,} MB",
            device.type != "cuda" or peak < P2_MEMORY_LIMIT_MB,
        )
    ]
    save_noises(out / "p2_noise", args.p2_noises, args.p2_size, seed=2)
    for name, dev in (("device", device), ("cpu", cpu)):
        argv = [str(out / "p2_noise"), str(out / f"p2_{name}"), str(unet_path), "--device", str(dev)]
        seconds, peak = measured(dev, lambda: p2_sample.main(argv))
        written = sorted(p.name for p in (out / f"p2_{name}").iterdir())
        expected = [f"{i:02d}.png" for i in range(args.p2_noises)]
        check = f"P2 hw2_2.sh sampler on {dev} ({args.p2_noises} × {args.p2_size}²)"
        rows.append(Row(check, seconds, peak, f"{len(written)} files", written == expected))
    a, b = read_pngs(out / "p2_device"), read_pngs(out / "p2_cpu")
    mse = float(np.mean([np.mean((a[k] - b[k]) ** 2) for k in a]))
    rows.append(Row("P2 device vs CPU", result=f"MSE {mse:.4f} on the 0–255 scale (grader's bar: 20)", ok=mse < 1.0))
    unet_path.unlink()
    return rows


def check_p3(args, device, cpu, out: Path) -> list[Row]:
    """hw2_3.sh on both targets' val folders on both devices: accuracy against the course's baselines."""
    rows = []
    for target in ("usps", "svhn"):
        truth = read_labels(digits_folder(args, target) / "val.csv")
        folder = out / f"p3_{target}_val" / target  # hw2_3.sh reads the domain from the path
        folder.mkdir(parents=True, exist_ok=True)
        for name in list(truth)[: args.p3_limit or None]:
            (folder / name).write_bytes((digits_folder(args, target) / "data" / name).read_bytes())
        labels = {}
        for name, dev in (("device", device), ("cpu", cpu)):
            csv_path = out / f"p3_{target}_{name}.csv"
            seconds, peak = measured(dev, lambda: p3_predict.main([str(folder), str(csv_path), "--device", str(dev)]))
            labels[name] = read_labels(csv_path)
            acc = np.mean([labels[name][k] == truth[k] for k in labels[name]])
            ok = len(labels[name]) == len(list(folder.iterdir())) and acc >= P3_BASELINES[target]
            result = (
                f"{len(labels[name])} images, accuracy {100 * acc:.2f} % (baseline {100 * P3_BASELINES[target]:.0f} %)"
            )
            rows.append(Row(f"P3 hw2_3.sh {target} val on {dev}", seconds, peak, result, ok))
        differ = sum(labels["device"][k] != labels["cpu"][k] for k in labels["cpu"])
        result = f"{differ} of {len(labels['cpu'])} labels differ (allowed: {P3_LABELS_MAY_DIFFER})"
        rows.append(Row(f"P3 {target} device vs CPU", result=result, ok=differ <= P3_LABELS_MAY_DIFFER))
    return rows


def digits_folder(args, target: str) -> Path:
    return Path(args.digits) / DATA_FOLDERS[target]


def check_bash(args, device, out: Path) -> list[Row]:
    """The bash entry points as the grader runs them (device chosen automatically), with this process's
    environment (a host may find libcuda through LD_LIBRARY_PATH) and this interpreter first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    expected = "cuda" if device.type == "cuda" and torch.cuda.is_available() else "cpu"
    runs = (
        ("hw2_1.sh", [str(out / "bash_p1")]),
        ("hw2_3.sh", [str(Path(args.digits) / "usps" / "data"), str(out / "bash_p3_usps.csv")]),
    )
    rows = []
    for script, script_args in runs:
        started = time.perf_counter()
        result = subprocess.run(
            ["bash", str(REPO / script), *script_args], capture_output=True, text=True, env=env, cwd="/"
        )
        lines = result.stdout.strip().splitlines() or [""]
        last = lines[-1] if result.returncode == 0 else result.stderr.strip()[-300:]
        ran_on = reported_device(result.stderr)
        ok = result.returncode == 0 and ran_on.split(":")[0] == expected
        check = f"bash {script} (auto device: {ran_on}, expected {expected})"
        rows.append(Row(check, time.perf_counter() - started, result=last, ok=ok))
    return rows


def last_logged_loss(run_dir: Path) -> float:
    log = run_dir / "metrics.jsonl"
    losses = [r["loss"] for r in read_metrics(log, having="loss")] if log.exists() else []
    return losses[-1] if losses else float("nan")


def check_training(args, device, out: Path) -> list[Row]:
    """A short burst of each trainer on the device, with torch's default backend flags: it must reach its
    last step (last.pt) with a finite loss."""
    reset_backend_flags()
    digits = Path(args.digits)
    bursts = (
        ("P1 p1.train", p1_train.main, out / "train_p1", ["--data-root", str(digits / "mnistm"), "--limit", "2048"]),
        (
            "P3 p3.train",
            p3_train.main,
            out / "train_p3",
            ["--source", str(digits / "mnistm"), "--target", str(digits / "usps")],
        ),
    )
    rows = []
    for name, fn, run_dir, argv in bursts:
        full = [*argv, "--out-dir", str(run_dir), "--steps", str(args.train_steps), "--device", str(device)]
        full += ["--log-every", "10"] if fn is p1_train.main else ["--eval-every", str(args.train_steps)]
        seconds, peak = measured(device, lambda: fn(full))
        step = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)["step"]
        loss = last_logged_loss(run_dir)
        ok = step == args.train_steps and np.isfinite(loss)
        result = f"{seconds / args.train_steps:.3f} s/step, reached step {step}, last loss {loss:.4f}"
        rows.append(Row(f"{name}, {args.train_steps} steps", seconds, peak, result, ok))
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--digits", required=True, help="hw2_data/digits (mnistm/, usps/, svhn/)")
    p.add_argument("--classifier", required=True, help="the grader's LeNet, Classifier.pth")
    p.add_argument("--out", required=True, help="folder for report.md and the compared outputs")
    p.add_argument("--device", default="cuda", help="the device under test (cpu: a dry run of the report)")
    p.add_argument("--p1-per-class", type=int, default=100, help="P1 digits per class")
    p.add_argument("--p2-size", type=int, default=64, help="P2 image side for the device-vs-CPU comparison")
    p.add_argument("--p2-noises", type=int, default=4, help="P2 noises for the device-vs-CPU comparison")
    p.add_argument("--p2-memory-size", type=int, default=256, help="P2 image side for the memory check")
    p.add_argument("--p2-memory-steps", type=int, default=3, help="DDIM steps of the memory check")
    p.add_argument("--p3-limit", type=int, default=0, help="label only the first N val images (0: all of them)")
    p.add_argument("--train-steps", type=int, default=30, help="steps of each training burst")
    p.add_argument("--no-bash", action="store_true", help="skip running the bash entry points as subprocesses")
    return p


def main() -> None:
    args = build_parser().parse_args()
    device, cpu = torch.device(args.device), torch.device("cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = check_p1(args, device, cpu, out) + check_p2(args, device, cpu, out) + check_p3(args, device, cpu, out)
    rows += [] if args.no_bash else check_bash(args, device, out)
    rows += check_training(args, device, out)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        "# GPU check",
        "",
        f"Device under test: `{device}` ({gpu}); torch {torch.__version__}, Python {platform.python_version()}; "
        f"CPU reference on the same machine ({torch.get_num_threads()} threads).",
        "",
        "| check | seconds | peak MB | result | ok |",
        "|---|---:|---:|---|:-:|",
        *[row.markdown() for row in rows],
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    sys.exit(0 if all(row.ok for row in rows) else 1)


if __name__ == "__main__":
    main()
