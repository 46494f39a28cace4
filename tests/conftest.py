"""Shared test fixtures: repository paths, the course's assets (``HW2_SHARED``), and script runners."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The folder of course assets some tests read (README, "Test"): data/hw2_digits.tar.gz,
# evaluator/Classifier.pth, p2/unet_state_dict_manifest.tsv, p2/unet_forward_golden.pt.
SHARED = os.environ.get("HW2_SHARED", "")


def shared_file(*parts: str) -> Path:
    """A file under ``$HW2_SHARED``, or skip the test (naming what it needs) where there is none."""
    if not SHARED:
        pytest.skip(f"HW2_SHARED is not set (this test needs {'/'.join(parts)} from the course's assets)")
    path = Path(SHARED).joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def run(args: list, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command from outside the repo (the grader's way), capturing text output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=timeout, cwd="/", env=full_env)


def run_module(module: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m module args…`` with the repo on PYTHONPATH."""
    return run([sys.executable, "-m", module, *map(str, args)], env={"PYTHONPATH": str(REPO)}, timeout=timeout)


def run_script(script: str, *args: str, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """``bash <repo>/<script> args…`` with absolute paths, from another working directory."""
    return run(["bash", str(REPO / script), *map(str, args)], env=env, timeout=timeout)


def course_ddim_scheduler(steps: int = 50):
    """diffusers' DDIMScheduler set up as the course's procedure: an independent DDIM to check ours against.

    The course computes ᾱ in float64 and casts it (SPEC.md); diffusers accumulates it in float32,
    so the float64 values are put in. Skips the test where diffusers is not installed.
    """
    import numpy as np
    import torch

    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=2e-2,
        beta_schedule="linear",
        clip_sample=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    scheduler.alphas_cumprod = torch.from_numpy(np.cumprod(1 - np.linspace(1e-4, 2e-2, 1000))).float()
    scheduler.final_alpha_cumprod = scheduler.alphas_cumprod[0]
    scheduler.set_timesteps(steps)
    return scheduler


def is_progress_bar(line: str) -> bool:
    """A tqdm progress line (``desc:  40%|████      | 2/5 [00:01<…]``)."""
    return bool(re.search(r"\d+%\|.*\| *\d+/\d+", line))


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A clean failure: non-zero exit, and stderr is one ``error:`` line naming what went wrong
    (progress bars aside): no traceback, no warning."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not is_progress_bar(line)]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def make_digit_dataset(root: Path, n: int, seed: int, mode: str = "RGB", splits=("train", "val")) -> Path:
    """A tiny dataset in the course layout: ``root/data/*.png`` and ``root/<split>.csv``.

    Each image is a random background with a bright bar whose position encodes its label, so a
    classifier can learn it in a few steps. Returns ``root``.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    index = 0
    for split in splits:
        rows = ["image_name,label"]
        for _ in range(n):
            label = int(rng.integers(10))
            pixels = rng.integers(0, 90, size=(28, 28, 3), dtype=np.uint8)
            pixels[2 + 2 * label : 4 + 2 * label, 4:24] = 255
            name = f"{index:05d}.png"
            Image.fromarray(pixels).convert(mode).save(root / "data" / name)
            rows.append(f"{name},{label}")
            index += 1
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root
