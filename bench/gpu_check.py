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
* Training: a short burst of ``p1.train`` and ``p3.train`` (dann-plus) on the device.

Writes ``OUT/report.md`` (and the outputs it compared) and exits 1 when a check fails.
``--device cpu`` runs the same checks with the CPU on both sides: that is how the report's
format is tested where there is no GPU.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # golden_unet: the test weights

from golden_unet import tame_unet  # noqa: E402

from p1 import generate as p1_generate  # noqa: E402
from p1 import train as p1_train  # noqa: E402
from p1.classifier import load_lenet, per_digit_accuracy, predict  # noqa: E402
from p2 import sample as p2_sample  # noqa: E402
from p3 import predict as p3_predict  # noqa: E402
from p3 import train as p3_train  # noqa: E402
from p3.table import DATA_FOLDERS  # noqa: E402

P2_MEMORY_LIMIT_MB = 9 * 1024  # the 2080 Ti's 11 GB, less headroom
P3_LABELS_MAY_DIFFER = 2  # per folder: a digit on the decision boundary may flip between float kernels
DEFAULT_BACKEND_FLAGS = {  # torch's own defaults: training bursts are timed as a user's training would run
    "cudnn.benchmark": torch.backends.cudnn.benchmark,
    "cudnn.deterministic": torch.backends.cudnn.deterministic,
    "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
    "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
}


def reset_backend_flags() -> None:
    """Undo ``exact_float32`` (deterministic cuDNN, no TF32), which the inference steps set."""
    torch.backends.cudnn.benchmark = DEFAULT_BACKEND_FLAGS["cudnn.benchmark"]
    torch.backends.cudnn.deterministic = DEFAULT_BACKEND_FLAGS["cudnn.deterministic"]
    torch.backends.cudnn.allow_tf32 = DEFAULT_BACKEND_FLAGS["cudnn.allow_tf32"]
    torch.backends.cuda.matmul.allow_tf32 = DEFAULT_BACKEND_FLAGS["cuda.matmul.allow_tf32"]


def reported_device(stderr: str) -> str:
    """The device an entry point says it ran on (its ``device: …`` line on stderr), or "?"."""
    found = [line.split(":", 1)[1].strip() for line in stderr.splitlines() if line.startswith("device:")]
    return found[-1] if found else "?"


def measured(device: torch.device, fn: Callable[[], object]) -> tuple[float, float]:
    """(seconds, peak device memory in MB or nan) of ``fn()``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return seconds, peak


def read_pngs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) for p in sorted(folder.glob("*.png"))}


def read_labels(path: Path) -> dict[str, str]:
    with open(path, newline="") as handle:
        return {row[0]: row[1] for row in list(csv.reader(handle))[1:]}


def tame_face_unet(path: Path, seed: int = 0) -> None:
    """A random-weight face UNet whose ε depends on x gently (tests/golden_unet.py), saved as a state_dict."""
    torch.save(tame_unet().state_dict(), path)


def save_noises(folder: Path, n: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        torch.save(torch.randn(1, 3, size, size, generator=gen), folder / f"{i:02d}.pt")


def p2_memory_check(
    unet: torch.nn.Module, x_T: torch.Tensor, device: torch.device, steps: int
) -> tuple[float, float, int]:
    """(seconds, peak MB, steps run) of the first ``steps`` DDIM steps of ``unet`` (on ``device``) from ``x_T``."""
    sampler = p2_sample.course_sampler()
    grid = sampler.steps()[:steps]

    def run() -> None:
        with torch.no_grad():
            x = x_T.to(device)
            for t, s in grid:
                x, _ = sampler.step(unet(x, torch.full((len(x),), t, device=device)), x, t, s)

    seconds, peak = measured(device, run)
    return seconds, peak, len(grid)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--digits", required=True, help="hw2_data/digits (mnistm/, usps/, svhn_real/)")
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
    args = p.parse_args()
    device, cpu = torch.device(args.device), torch.device("cpu")
    out, digits = Path(args.out), Path(args.digits)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str, bool]] = []  # (check, seconds, peak MB, result, ok)
    fmt_mb = lambda mb: "—" if mb != mb else f"{mb:,.0f}"

    # P1: the generator on both devices, scored by the grader's LeNet
    lenet = load_lenet(args.classifier)
    accuracies = {}
    for name, dev in (("device", device), ("cpu", cpu)):
        folder = out / f"p1_{name}"
        argv = [str(folder), "--device", str(dev), "--per-class", str(args.p1_per_class)]
        seconds, peak = measured(dev, lambda: p1_generate.main(argv))
        files = sorted(folder.glob("*.png"))
        images = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
        labels = torch.tensor([int(f.name[0]) for f in files])
        preds = predict(lenet, images.permute(0, 3, 1, 2))
        accuracies[name] = (preds == labels).float().mean().item()
        worst = min(per_digit_accuracy(preds, labels).values())
        ok = len(files) == 10 * args.p1_per_class
        rows.append(
            (
                f"P1 hw2_1.sh generator on {dev}",
                f"{seconds:.1f}",
                fmt_mb(peak),
                f"{len(files)} files, LeNet accuracy {100 * accuracies[name]:.2f} % (worst digit {100 * worst:.0f} %)",
                ok,
            )
        )
    a, b = read_pngs(out / "p1_device"), read_pngs(out / "p1_cpu")
    same = np.mean([np.array_equal(a[k], b[k]) for k in a])
    max_diff = max(np.abs(a[k] - b[k]).max() for k in a)
    rows.append(
        (
            "P1 device vs CPU",
            "",
            "",
            f"{100 * same:.1f} % identical PNGs, max |Δ| {max_diff:.0f} grey levels, "
            f"accuracy Δ {100 * (accuracies['device'] - accuracies['cpu']):+.2f} points",
            abs(accuracies["device"] - accuracies["cpu"]) <= 0.005,
        )
    )

    # P2: memory of the default batch at 256×256, then device vs CPU on small images
    unet_path = out / "p2_unet_random.pt"
    tame_face_unet(unet_path)
    save_noises(out / "p2_noise_memory", 10, args.p2_memory_size, seed=1)
    memory_noises = torch.stack(list(p2_sample.load_noises(out / "p2_noise_memory").values()))
    unet = p2_sample.load_unet(unet_path, device)
    seconds, peak, steps = p2_memory_check(unet, memory_noises, device, args.p2_memory_steps)
    del unet
    per_step = seconds / steps
    ok = device.type != "cuda" or peak < P2_MEMORY_LIMIT_MB
    rows.append(
        (
            f"P2 default batch (10 × {args.p2_memory_size}²), {steps} DDIM steps",
            f"{seconds:.1f}",
            fmt_mb(peak),
            f"{per_step:.2f} s/step → {50 * per_step:.0f} s for 50 steps; memory limit {P2_MEMORY_LIMIT_MB:,} MB",
            ok,
        )
    )
    save_noises(out / "p2_noise", args.p2_noises, args.p2_size, seed=2)
    for name, dev in (("device", device), ("cpu", cpu)):
        argv = [str(out / "p2_noise"), str(out / f"p2_{name}"), str(unet_path), "--device", str(dev)]
        seconds, peak = measured(dev, lambda: p2_sample.main(argv))
        rows.append(
            (
                f"P2 hw2_2.sh sampler on {dev} ({args.p2_noises} × {args.p2_size}²)",
                f"{seconds:.1f}",
                fmt_mb(peak),
                "",
                True,
            )
        )
    a, b = read_pngs(out / "p2_device"), read_pngs(out / "p2_cpu")
    mse = float(np.mean([np.mean((a[k] - b[k]) ** 2) for k in a]))
    rows.append(
        ("P2 device vs CPU", "", "", f"MSE {mse:.4f} on the 0–255 scale (grader's bar: 20; exact ≈ 0.01)", mse < 1.0)
    )
    unet_path.unlink()

    # P3: both targets' val folders on both devices
    for target in ("usps", "svhn"):
        truth = read_labels(digits / DATA_FOLDERS[target] / "val.csv")
        folder = out / f"p3_{target}_val" / target  # hw2_3.sh reads the domain from the path
        folder.mkdir(parents=True, exist_ok=True)
        for name in list(truth)[: args.p3_limit or None]:
            (folder / name).write_bytes((digits / DATA_FOLDERS[target] / "data" / name).read_bytes())
        labels = {}
        for name, dev in (("device", device), ("cpu", cpu)):
            csv_path = out / f"p3_{target}_{name}.csv"
            seconds, peak = measured(dev, lambda: p3_predict.main([str(folder), str(csv_path), "--device", str(dev)]))
            labels[name] = read_labels(csv_path)
            acc = np.mean([labels[name][k] == truth[k] for k in labels[name]])
            result = f"{len(labels[name])} images, accuracy {100 * acc:.2f} %"
            rows.append((f"P3 hw2_3.sh {target} val on {dev}", f"{seconds:.1f}", fmt_mb(peak), result, True))
        differ = sum(labels["device"][k] != labels["cpu"][k] for k in labels["cpu"])
        result = f"{differ} of {len(labels['cpu'])} labels differ (allowed: {P3_LABELS_MAY_DIFFER})"
        rows.append((f"P3 {target} device vs CPU", "", "", result, differ <= P3_LABELS_MAY_DIFFER))

    # the bash entry points, as the grader runs them (device chosen automatically), with this process's
    # whole environment (a host may find libcuda through LD_LIBRARY_PATH) and this interpreter first on PATH
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    expected = "cuda" if device.type == "cuda" and torch.cuda.is_available() else "cpu"
    bash_runs = (
        ("hw2_1.sh", [str(out / "bash_p1")]),
        ("hw2_3.sh", [str(digits / "usps" / "data"), str(out / "bash_p3_usps.csv")]),
    )
    for script, script_args in () if args.no_bash else bash_runs:
        started = time.perf_counter()
        result = subprocess.run(
            ["bash", str(REPO / script), *script_args], capture_output=True, text=True, env=env, cwd="/"
        )
        last = (
            (result.stdout.strip().splitlines() or [""])[-1] if result.returncode == 0 else result.stderr.strip()[-300:]
        )
        ran_on = reported_device(result.stderr)
        ok = result.returncode == 0 and ran_on.split(":")[0] == expected
        seconds = f"{time.perf_counter() - started:.1f}"
        rows.append((f"bash {script} (auto device: {ran_on}, expected {expected})", seconds, "", last, ok))

    # training bursts on the device, with torch's default backend flags
    reset_backend_flags()
    for name, argv, fn in (
        (
            "P1 p1.train",
            ["--data-root", str(digits / "mnistm"), "--out-dir", str(out / "train_p1"), "--limit", "2048"],
            p1_train.main,
        ),
        (
            "P3 p3.train dann-plus",
            [
                "--method",
                "dann-plus",
                "--source",
                str(digits / "mnistm"),
                "--target",
                str(digits / "usps"),
                "--out-dir",
                str(out / "train_p3"),
                "--limit",
                "2048",
                "--self-train-from",
                "0.5",
            ],
            p3_train.main,
        ),
    ):
        full = [*argv, "--steps", str(args.train_steps), "--device", str(device)]
        seconds, peak = measured(device, lambda: fn(full))
        rows.append(
            (
                f"{name}, {args.train_steps} steps",
                f"{seconds:.1f}",
                fmt_mb(peak),
                f"{seconds / args.train_steps:.3f} s/step",
                True,
            )
        )

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        "# GPU check",
        "",
        f"Device under test: `{device}` ({gpu}); torch {torch.__version__}, Python {platform.python_version()}; "
        f"CPU reference on the same machine ({torch.get_num_threads()} threads).",
        "",
        "| check | seconds | peak MB | result | ok |",
        "|---|---:|---:|---|:-:|",
        *[f"| {c} | {s} | {m} | {r} | {'yes' if ok else '**NO**'} |" for c, s, m, r, ok in rows],
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    sys.exit(0 if all(ok for *_, ok in rows) else 1)


if __name__ == "__main__":
    main()
