"""P2's report figures drawn by the digit model: the η grid and the slerp / linear interpolation strips.

    python -m p1.ddim_figures --out figures/p2 [--checkpoint p1/checkpoints/ddpm_mnistm.pt --digit 0]

The course's face UNet is not in this repository, so the report shows what DDIM's η and the two
interpolations do with P1's UNet instead (its noise schedule is the course's), through the same
sampler as ``hw2_2.sh`` (``hw2lib/ddim_figures.py``): digit ``--digit`` under classifier-free
guidance, from four noises drawn with ``--seed``. Writes ``digit_eta_grid.png`` and
``digit_interpolation_{slerp,linear}.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import torch

from hw2lib.cli import exact_float32, pick_device, run_main
from hw2lib.ddim_figures import draw_figures

from .sampling import DEFAULT_CHECKPOINT, ClassifierFreeGuidance, initial_noise, load_model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p1.ddim_figures", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="P1 model checkpoint")
    p.add_argument("--digit", type=int, default=0, choices=range(10), help="the digit drawn")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--out", required=True, help="folder for the figure PNGs")
    p.add_argument("--seed", type=int, default=0, help="seed of the four noises and of the per-step noise for η > 0")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    exact_float32()
    device = pick_device(args.device)
    model, schedule = load_model(args.checkpoint, device)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        labels = torch.full((len(x),), args.digit, dtype=torch.long, device=x.device)
        return ClassifierFreeGuidance(model, labels, args.guidance, schedule)(x, t)

    names = [f"seed {args.seed}, #{i}" for i in range(4)]
    draw_figures(eps_fn, initial_noise(4, args.seed), names, Path(args.out), "digit_", args.seed, device)


if __name__ == "__main__":
    run_main(main)
