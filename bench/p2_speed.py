"""Time hw2_2.sh's sampler: N noises at 256×256 through the face UNet (weights don't change the time).

    python bench/p2_speed.py --noises 10 --measure-steps 50 [--device cuda]

The course UNet's weights are not public, so this fills it with the golden-test rule. With
``--measure-steps k < 50`` it times k DDIM steps on all noises and reports 50 × the per-step
time (every step costs the same: one UNet forward of the whole batch).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # golden_unet: the test weights

from golden_unet import golden_unet

from hw2lib.cli import pick_device
from hw2lib.ddim import course_sampler


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noises", type=int, default=10, help="number of 256×256 noises")
    p.add_argument("--size", type=int, default=256, help="image side")
    p.add_argument("--batch-size", type=int, default=10, help="noises per forward (as hw2_2.sh)")
    p.add_argument("--measure-steps", type=int, default=50, help="DDIM steps actually run (≤ 50)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    args = p.parse_args()
    device = pick_device(args.device)
    unet = golden_unet().to(device)
    sampler = course_sampler()
    x = torch.randn(args.noises, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    steps = list(zip(sampler.timesteps(), sampler.prev_timesteps()))[: args.measure_steps]
    started = time.time()
    with torch.no_grad():
        for chunk in x.split(args.batch_size):
            for t, s in steps:
                eps = unet(chunk, torch.full((len(chunk),), t, device=device))
                chunk, _ = sampler.step(eps, chunk, t, s)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.time() - started
    total = seconds * 50 / len(steps)
    how = "measured" if len(steps) == 50 else f"extrapolated from {len(steps)} measured steps"
    print(
        f"{args.noises} noises at {args.size}×{args.size} on {device} (threads={torch.get_num_threads()}): "
        f"{seconds / len(steps):.2f} s/step, {total:.0f} s for 50 steps ({how})"
    )


if __name__ == "__main__":
    main()
