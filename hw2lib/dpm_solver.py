"""DPM-Solver++(2M) (Lu et al., 2022): a second-order multistep ODE sampler on the DDIM grid.

Same interface and edge-case settings as :class:`hw2lib.ddim.DDIMSampler` (the network is any
``eps_fn(x_t, t)``; the grid comes from :class:`hw2lib.ddim.TimestepGrid`), deterministic, and it
needs no extra network evaluations: each step reuses the previous step's x0 prediction to cancel
the first-order error of DDIM. In the notation of the paper (VP schedule, α_t = √ᾱ_t,
σ_t = √(1 − ᾱ_t), λ_t = log(α_t / σ_t), h = λ_s − λ_t for a step from t down to s):

    x0_t  = (x_t − σ_t·eps) / α_t                                   (data prediction, eq. 11)
    D     = (1 + 1/(2r))·x0_t − 1/(2r)·x0_prev,  r = h_prev / h      (multistep correction, Alg. 2)
    x_s   = (σ_s / σ_t)·x_t − α_s·(e^{−h} − 1)·D                    (exact linear part, eq. 12)

With ``order = 1`` (or on the first step) D = x0_t and the update is exactly DDIM with η = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from tqdm.auto import tqdm

from .ddim import EpsFn, StepCallback, TimestepGrid


@dataclass
class DPMSolverPP2M(TimestepGrid):
    clip_sample: bool = True  # clamp every x0 prediction to [−1, 1] (as the DDIM sampler does)
    order: int = 2  # 1 = DDIM (η = 0) written in x0 form; 2 = DPM-Solver++(2M)
    lower_order_final: bool = True  # first-order last step: stabler for few steps (as diffusers does below 15)

    @torch.no_grad()
    def sample(
        self,
        eps_fn: EpsFn,
        x_T: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        callback: Optional[StepCallback] = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Solve the probability-flow ODE from ``x_T`` (B, C, H, W); returns x_0. ``generator`` is
        accepted for interface parity with DDIM and unused: the solver draws no noise."""
        x, x0_prev, h_prev = x_T, None, None
        steps = self.steps()
        for i, (t, s) in enumerate(tqdm(steps, desc="DPM-Solver++", disable=not progress, leave=False)):
            alpha_t, sigma_t = math.sqrt(self.alpha_bar(t)), math.sqrt(1.0 - self.alpha_bar(t))
            alpha_s, sigma_s = math.sqrt(self.alpha_bar(s)), math.sqrt(1.0 - self.alpha_bar(s))
            t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            eps = eps_fn(x, t_batch).to(x.dtype)
            x0 = (x - sigma_t * eps) / alpha_t
            if self.clip_sample:
                x0 = x0.clamp(-1.0, 1.0)
            if sigma_s == 0.0:  # the clean end (ᾱ = 1): the ODE's solution is the data prediction
                x = x0
            else:
                h = math.log(alpha_s / sigma_s) - math.log(alpha_t / sigma_t)
                first_order = self.order == 1 or x0_prev is None or (self.lower_order_final and i == len(steps) - 1)
                if first_order:
                    d = x0
                else:
                    r = h_prev / h
                    d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
                x = (sigma_s / sigma_t) * x - alpha_s * math.expm1(-h) * d
                h_prev = h
            x0_prev = x0
            if callback is not None:
                callback(t, s, x, x0)
        return x
