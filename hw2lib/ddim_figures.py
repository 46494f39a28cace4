"""The report's DDIM figures for any ε-model: the η grid and the slerp / linear interpolation strips.

* ``eta_grid.png``: four noises (rows) × η = 0, 0.25, 0.5, 0.75, 1 (columns);
* ``interpolation_slerp.png`` and ``interpolation_linear.png``: noise 0 → noise 1 at α = 0.0, 0.1, …, 1.0.

Every image goes through :func:`hw2lib.ddim.course_sampler` (``hw2_2.sh``'s DDIM: 50 steps of the
course's grid, x0 clipped) and per-image min–max. ``python -m p2.figures`` draws them with the
course's face UNet, ``python -m p1.ddim_figures`` with P1's digit model.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from .ddim import EpsFn, course_sampler, ddim_images
from .images import minmax_to_uint8

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


def draw_figures(
    eps_fn: EpsFn, noises: torch.Tensor, names: list[str], out: Path, prefix: str, seed: int, device: torch.device
) -> None:
    """Write ``{prefix}eta_grid.png`` and ``{prefix}interpolation_{slerp,linear}.png`` for ``noises`` (4, 3, H, W)."""
    per_eta = [minmax_to_uint8(x) for x in eta_grid(eps_fn, noises, device, seed)]
    rows = [[per_eta[e][i] for e in range(len(ETAS))] for i in range(len(names))]
    save_figure(rows, [f"noise {n}" for n in names], [f"η = {e}" for e in ETAS], out / f"{prefix}eta_grid.png")
    for name, how in (("slerp", slerp), ("linear", lerp)):
        images = minmax_to_uint8(interpolation(eps_fn, noises[0], noises[1], how, device))
        save_figure([list(images)], [name], [f"α = {a}" for a in ALPHAS], out / f"{prefix}interpolation_{name}.png")
    print(f"wrote {prefix}eta_grid.png, {prefix}interpolation_slerp.png, {prefix}interpolation_linear.png to {out}")
