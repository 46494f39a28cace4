"""P2 report figures from one command: the η grid and the slerp / linear interpolation strips.

    python -m p2.figures --noise-dir hw2_data/face/noise --unet hw2_data/face/UNet.pt --out figures/p2
    python -m p2.figures --digit-model p1/checkpoints/ddpm_mnistm.pt --out figures/p2

* ``eta_grid.png``: noises 00–03 (rows) × η = 0, 0.25, 0.5, 0.75, 1 (columns);
* ``interpolation_slerp.png`` and ``interpolation_linear.png``: noises 00 → 01 at
  α = 0.0, 0.1, …, 1.0.

Both go through the same DDIM as ``hw2_2.sh`` (50 steps of the course's grid, x0 clipped, min–max
saved). With ``--digit-model`` the ε-model is P1's digit UNet instead of the course's face UNet
(its noise schedule is the same), drawing digit ``--digit`` under classifier-free guidance, from
four noises drawn with ``--seed``; the files are then prefixed ``digit_``.
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
    p.add_argument("--noise-dir", help="folder with 00.pt … 03.pt (with --unet)")
    p.add_argument("--unet", help="the course's UNet state_dict (UNet.pt)")
    p.add_argument("--digit-model", help="instead of --unet and --noise-dir: a P1 checkpoint (ddpm_mnistm.pt)")
    p.add_argument("--digit", type=int, default=0, choices=range(10), help="with --digit-model: the digit drawn")
    p.add_argument("--guidance", type=float, default=3.0, help="with --digit-model: classifier-free guidance scale")
    p.add_argument("--out", required=True, help="folder for the figure PNGs")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-step noise for η > 0 (and of the digit noises)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    return p


def face_model(args: argparse.Namespace, device: torch.device) -> tuple[EpsFn, torch.Tensor, list[str]]:
    """The course's face UNet and noises 00–03."""
    noise_dir = Path(args.noise_dir)
    names = ["00", "01", "02", "03"]
    missing = [n for n in names if not (noise_dir / f"{n}.pt").is_file()]
    if missing:
        raise UserError(f"{noise_dir}: missing {', '.join(m + '.pt' for m in missing)} (the figures use noises 00–03)")
    noises = torch.stack([load_noise(noise_dir / f"{n}.pt") for n in names])
    return load_unet(args.unet, device), noises, names


def digit_model(args: argparse.Namespace, device: torch.device) -> tuple[EpsFn, torch.Tensor, list[str]]:
    """P1's digit UNet as ``eps(x, t)`` for one digit under classifier-free guidance, and four seeded noises."""
    from p1.sampling import ClassifierFreeGuidance, initial_noise, load_model

    model, schedule = load_model(args.digit_model, device)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        labels = torch.full((len(x),), args.digit, dtype=torch.long, device=x.device)
        return ClassifierFreeGuidance(model, labels, args.guidance, schedule)(x, t)

    return eps_fn, initial_noise(4, args.seed), [f"seed {args.seed}, #{i}" for i in range(4)]


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    if (args.digit_model is None) == (args.unet is None or args.noise_dir is None):
        raise UserError("give either --unet and --noise-dir (the face UNet) or --digit-model (P1's digit UNet)")
    out = Path(args.out)
    exact_float32()
    device = pick_device(args.device)
    eps_fn, noises, names = digit_model(args, device) if args.digit_model else face_model(args, device)
    prefix = "digit_" if args.digit_model else ""

    per_eta = [minmax_to_uint8(x) for x in eta_grid(eps_fn, noises, device, args.seed)]
    rows = [[per_eta[e][i] for e in range(len(ETAS))] for i in range(len(names))]
    save_figure(rows, [f"noise {n}" for n in names], [f"η = {e}" for e in ETAS], out / f"{prefix}eta_grid.png")
    for name, how in (("slerp", slerp), ("linear", lerp)):
        images = minmax_to_uint8(interpolation(eps_fn, noises[0], noises[1], how, device))
        save_figure([list(images)], [name], [f"α = {a}" for a in ALPHAS], out / f"{prefix}interpolation_{name}.png")
    print(f"wrote {prefix}eta_grid.png, {prefix}interpolation_slerp.png, {prefix}interpolation_linear.png to {out}")


if __name__ == "__main__":
    run_main(main)
