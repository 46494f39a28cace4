"""DANN's pieces (Ganin & Lempitsky, 2015): gradient reversal, the domain loss and the schedules.

* :class:`GradientReversal`: identity forward, ``−λ · grad`` backward (an autograd Function).
* :class:`DomainAdversarialLoss`: BCE of a domain discriminator on reversed features
  (source = 1, target = 0), plus the discriminator's domain accuracy.
* :func:`adaptation_weight` and :func:`annealed_lr`: the paper's schedules of training progress p.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GradientReversal(torch.autograd.Function):
    """y = x forward; dL/dx = −λ · dL/dy backward (λ is not differentiated)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.lambd * grad_output, None


def grad_reverse(x: torch.Tensor, lambd: float) -> torch.Tensor:
    return GradientReversal.apply(x, lambd)


def adaptation_weight(p: float, gamma: float = 10.0) -> float:
    """λ_p = 2 / (1 + exp(−γ·p)) − 1: 0 at p = 0, → 1 as p → 1 (Ganin & Lempitsky, §3.2)."""
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def annealed_lr(p: float, lr0: float = 0.01, alpha: float = 10.0, beta: float = 0.75) -> float:
    """μ_p = μ0 / (1 + α·p)^β: the paper's learning-rate annealing over progress p ∈ [0, 1]."""
    return lr0 / (1.0 + alpha * p) ** beta


class DomainDiscriminator(nn.Module):
    """Features (B, D) → one domain logit (B,): > 0 means "source"."""

    def __init__(self, in_features: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(1)


class DomainAdversarialLoss(nn.Module):
    """BCE of ``discriminator`` on gradient-reversed source and target features.

    Minimising it trains the discriminator to tell the domains apart while the reversed gradient
    trains the feature extractor to make them indistinguishable.
    """

    def __init__(self, discriminator: DomainDiscriminator):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, f_source: torch.Tensor, f_target: torch.Tensor, lambd: float) -> tuple[torch.Tensor, float]:
        logits = self.discriminator(grad_reverse(torch.cat([f_source, f_target]), lambd))
        labels = torch.cat([torch.ones(len(f_source)), torch.zeros(len(f_target))]).to(logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean().item()
        return loss, accuracy
