"""P2 report figures from one command: the η grid and the slerp / linear interpolation strips.

    python -m p2.figures --noise-dir hw2_data/face/noise --unet hw2_data/face/UNet.pt --out figures/p2

* ``eta_grid.png``: noises 00–03 (rows) × η = 0, 0.25, 0.5, 0.75, 1 (columns);
* ``interpolation_slerp.png`` and ``interpolation_linear.png``: noises 00 → 01 at
  α = 0.0, 0.1, …, 1.0.

The functions take any ε-model ``eps_fn(x, t)``, so they serve other models than the course UNet.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from hw2lib.cli import UserError, exact_float32, pick_device, run_main
from hw2lib.ddim import EpsFn
from hw2lib.images import minmax_to_uint8

from .sample import course_sampler, ddim_images, load_noise, load_unet

ETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
ALPHAS = tuple(round(0.1 * k, 1) for k in range(11))


def slerp(x0: torch.Tensor, x1: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation: sin((1−α)θ)/sin θ · x0 + sin(αθ)/sin θ · x1, θ the angle between them."""
    cos = torch.dot(x0.flatten(), x1.flatten()) / (x0.norm() * x1.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    return (torch.sin((1 - alpha) * theta) * x0 + torch.sin(alpha * theta) * x1) / torch.sin(theta)


def lerp(x0: torch.Tensor, x1: torch.Tensor, alpha: float) -> torch.Tensor:
    return (1 - alpha) * x0 + alpha * x1


def eta_grid(eps_fn: EpsFn, noises: torch.Tensor, device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    """For each η in ETAS, samples (N, 3, H, W) from ``noises``; η > 0 noise from a seeded generator."""
    return [
        ddim_images(eps_fn, noises, course_sampler(eta=eta), len(noises), device, torch.Generator().manual_seed(seed))
        for eta in ETAS
    ]


def interpolation(eps_fn: EpsFn, x0: torch.Tensor, x1: torch.Tensor, how, device: torch.device) -> torch.Tensor:
    """Samples (len(ALPHAS), 3, H, W) from ``how(x0, x1, α)`` for α in ALPHAS (η = 0)."""
    noises = torch.stack([how(x0, x1, a) for a in ALPHAS])
    return ddim_images(eps_fn, noises, course_sampler(), 4, device)


def save_figure(rows: list[torch.Tensor], row_labels: list[str], col_labels: list[str], path: Path) -> None:
    """Images laid out as rows × columns with labels; ``rows`` holds uint8 (C, H, W, 3) tensors."""
    n_rows, n_cols = len(rows), len(rows[0])
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols + 0.6, 1.3 * n_rows + 0.3), squeeze=False)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            ax = axes[r][c]
            ax.imshow(img.numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    noise_dir, out = Path(args.noise_dir), Path(args.out)
    exact_float32()
    names = ["00", "01", "02", "03"]
    missing = [n for n in names if not (noise_dir / f"{n}.pt").is_file()]
    if missing:
        raise UserError(f"{noise_dir}: missing {', '.join(m + '.pt' for m in missing)} (the figures use noises 00–03)")
    noises = torch.stack([load_noise(noise_dir / f"{n}.pt") for n in names])
    device = pick_device(args.device)
    unet = load_unet(args.unet, device)

    per_eta = [minmax_to_uint8(x) for x in eta_grid(unet, noises, device, args.seed)]
    rows = [[per_eta[e][i] for e in range(len(ETAS))] for i in range(len(names))]
    save_figure(rows, [f"noise {n}" for n in names], [f"η = {e}" for e in ETAS], out / "eta_grid.png")
    for name, how in (("slerp", slerp), ("linear", lerp)):
        images = minmax_to_uint8(interpolation(unet, noises[0], noises[1], how, device))
        save_figure([list(images)], [name], [f"α = {a}" for a in ALPHAS], out / f"interpolation_{name}.png")
    print(f"wrote eta_grid.png, interpolation_slerp.png, interpolation_linear.png to {out}")


if __name__ == "__main__":
    run_main(main)
