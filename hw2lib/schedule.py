"""The DDPM noise schedule (Ho et al., 2020), kept in float64 and outside any ``nn.Module``.

Timesteps are integer indices ``t`` in ``[0, num_timesteps)``; ``alphas_cumprod[t]`` is ᾱ_t with
``alphas_cumprod[0] = 1 - beta_start`` (0-indexed, as the course's reference code does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch


@dataclass(frozen=True)
class NoiseSchedule:
    """A linear-β schedule: β = linspace(beta_start, beta_end, num_timesteps) in float64."""

    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2

    @cached_property
    def betas(self) -> np.ndarray:
        """β_t = linspace(beta_start, beta_end, T), float64, read-only, computed once."""
        betas = np.linspace(self.beta_start, self.beta_end, self.num_timesteps, dtype=np.float64)
        betas.flags.writeable = False
        return betas

    @cached_property
    def alphas_cumprod(self) -> np.ndarray:
        """ᾱ_t = Π_{s≤t} (1 − β_s), float64, shape (num_timesteps,), read-only, computed once."""
        alphas_cumprod = np.cumprod(1.0 - self.betas)
        alphas_cumprod.flags.writeable = False
        return alphas_cumprod

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ at integer timesteps ``t`` (any shape, long) as float32 on ``t``'s device."""
        table = torch.tensor(self.alphas_cumprod, dtype=torch.float32, device=t.device)
        return table[t]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Forward process (DDPM eq. 4): x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·eps, for x0 in [−1, 1], t of shape (B,)."""
        a = self.alpha_bar(t).view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1.0 - a).sqrt() * eps

    @staticmethod
    def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar) -> torch.Tensor:
        """x0 = (x_t − √(1−ᾱ)·ε) / √ᾱ (DDIM eq. 9). ``alpha_bar`` is a Python float (float64 roots)
        or a tensor broadcastable to ``x_t`` (roots in its dtype: the course's float32 arithmetic)."""
        if isinstance(alpha_bar, torch.Tensor):
            return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
        return (x_t - math.sqrt(1.0 - alpha_bar) * eps) / math.sqrt(alpha_bar)

    @staticmethod
    def predict_eps(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`predict_x0`: ε = (x_t − √ᾱ·x0) / √(1−ᾱ), for a tensor ``alpha_bar``."""
        return (x_t - alpha_bar.sqrt() * x0) / (1.0 - alpha_bar).sqrt()

    def config(self) -> dict:
        return {"num_timesteps": self.num_timesteps, "beta_start": self.beta_start, "beta_end": self.beta_end}
