"""Measuring on a device for bench/gpu_check.py: wall time and peak memory, PNG/CSV readers, test inputs."""

from __future__ import annotations

import csv
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

from hw2lib.ddim import course_sampler  # noqa: E402

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
    sampler = course_sampler()
    grid = sampler.steps()[:steps]

    def run() -> None:
        with torch.no_grad():
            x = x_T.to(device)
            for t, s in grid:
                x, _ = sampler.step(unet(x, torch.full((len(x),), t, device=device)), x, t, s)

    seconds, peak = measured(device, run)
    return seconds, peak, len(grid)
