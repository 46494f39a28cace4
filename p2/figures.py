"""P2 report figures from one command: the η grid and the slerp / linear interpolation strips.

    python -m p2.figures --noise-dir hw2_data/face/noise --unet hw2_data/face/UNet.pt --out figures/p2

* ``eta_grid.png``: noises 00–03 (rows) × η = 0, 0.25, 0.5, 0.75, 1 (columns);
* ``interpolation_slerp.png`` and ``interpolation_linear.png``: noises 00 → 01 at
  α = 0.0, 0.1, …, 1.0.

Both go through ``hw2_2.sh``'s DDIM (``hw2lib/ddim_figures.py``); ``python -m p1.ddim_figures``
draws the same figures with P1's digit model.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import torch

from hw2lib.cli import UserError, exact_float32, pick_device, run_main
from hw2lib.ddim_figures import draw_figures

from .sample import load_noise, load_unet

NAMES = ("00", "01", "02", "03")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p2.figures", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--noise-dir", required=True, help="folder with 00.pt … 03.pt")
    p.add_argument("--unet", required=True, help="the course's UNet state_dict (UNet.pt)")
    p.add_argument("--out", required=True, help="folder for the figure PNGs")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-step noise for η > 0")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    noise_dir = Path(args.noise_dir)
    exact_float32()
    missing = [n for n in NAMES if not (noise_dir / f"{n}.pt").is_file()]
    if missing:
        raise UserError(f"{noise_dir}: missing {', '.join(m + '.pt' for m in missing)} (the figures use noises 00–03)")
    noises = torch.stack([load_noise(noise_dir / f"{n}.pt") for n in NAMES])
    device = pick_device(args.device)
    draw_figures(load_unet(args.unet, device), noises, list(NAMES), Path(args.out), "", args.seed, device)


if __name__ == "__main__":
    run_main(main)
