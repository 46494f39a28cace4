"""The diffusion training loss: ε-MSE with labels dropped for guidance, and its per-timestep weighting.

DDPM's "simple" loss (Ho et al. 2020, eq. 14) weighs every timestep alike. Min-SNR-γ (Hang et al.
2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy") treats training as multi-task
learning over timesteps and caps each task's weight at γ in x0-space. For ε-prediction the weight
of timestep t is

    w(t) = min(SNR(t), γ) / SNR(t),    SNR(t) = ᾱ_t / (1 − ᾱ_t)

so low-noise steps (SNR ≫ γ, where ε is easy and the gradient is large) are scaled down and the
high-noise steps that decide a digit's shape keep weight 1. γ = 5 is the paper's choice; γ = ∞
(``gamma=None``) is the simple loss.
"""

from __future__ import annotations

from typing import Optional

import torch

from hw2lib.schedule import NoiseSchedule


def snr(schedule: NoiseSchedule, t: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) at integer timesteps ``t`` (float32)."""
    a = schedule.alpha_bar(t)
    return a / (1.0 - a)


def min_snr_weights(schedule: NoiseSchedule, t: torch.Tensor, gamma: Optional[float]) -> torch.Tensor:
    """Per-sample ε-loss weights min(SNR, γ)/SNR at ``t`` (B,); all ones when ``gamma`` is None.
    γ ≤ 0 is refused: it would weight every timestep by zero (the simple loss is ``None``)."""
    if gamma is None:
        return torch.ones(t.shape, device=t.device)
    if gamma <= 0:
        raise ValueError(f"min-SNR gamma must be positive or None (the simple loss), not {gamma}")
    s = snr(schedule, t)
    return s.clamp(max=gamma) / s


def diffusion_loss(
    model,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    y: torch.Tensor,
    p_uncond: float,
    gen: torch.Generator,
    null_label: int,
    snr_gamma: Optional[float] = None,
) -> torch.Tensor:
    """Weighted ε-MSE: labels dropped to ``null_label`` with probability ``p_uncond`` (CFG training),
    each sample's squared error averaged over pixels, then weighted by :func:`min_snr_weights`."""
    n = x0.shape[0]
    t = torch.randint(0, schedule.num_timesteps, (n,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    drop = torch.rand(n, generator=gen) < p_uncond
    device = x0.device  # the random draws come from a CPU generator; everything meets on x0's device
    t, eps, drop = t.to(device), eps.to(device), drop.to(device)
    y = torch.where(drop, torch.full_like(y, null_label), y)
    x_t = schedule.q_sample(x0, t, eps)
    per_sample = (model(x_t, t, y).float() - eps).square().flatten(1).mean(1)
    return (min_snr_weights(schedule, t, snr_gamma) * per_sample).mean()
