"""DPM-Solver++(2M) (Lu et al., 2022): a second-order multistep ODE sampler on the DDIM grid.

Same interface and edge-case settings as :class:`hw2lib.ddim.DDIMSampler` (the network is any
``eps_fn(x_t, t)``; the grid and the sampling loop come from :class:`hw2lib.ddim.TimestepGrid`;
this class only supplies the update), deterministic, and it
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

from .ddim import TimestepGrid


@dataclass
class DPMSolverPP2M(TimestepGrid):
    clip_sample: bool = True  # clamp every x0 prediction to [−1, 1] (as the DDIM sampler does)
    order: int = 2  # 1 = DDIM (η = 0) written in x0 form; 2 = DPM-Solver++(2M)
    lower_order_final: bool = True  # first-order last step: stabler for few steps (as diffusers does below 15)

    def update(self, eps, x_t, t, s, generator, last, memory):
        """One DPM-Solver++(2M) step; ``memory`` holds the previous step's x0 and h. Draws no noise."""
        alpha_t, sigma_t = math.sqrt(self.alpha_bar(t)), math.sqrt(1.0 - self.alpha_bar(t))
        alpha_s, sigma_s = math.sqrt(self.alpha_bar(s)), math.sqrt(1.0 - self.alpha_bar(s))
        x0 = self.schedule.predict_x0(x_t, eps, self.alpha_bar(t))
        if self.clip_sample:
            x0 = x0.clamp(-1.0, 1.0)
        x0_prev, h_prev = memory.get("x0"), memory.get("h")
        memory["x0"] = x0
        if sigma_s == 0.0:  # the clean end (ᾱ = 1): the ODE's solution is the data prediction
            return x0, x0
        h = math.log(alpha_s / sigma_s) - math.log(alpha_t / sigma_t)
        memory["h"] = h
        if self.order == 1 or x0_prev is None or (self.lower_order_final and last):
            d = x0
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        return (sigma_s / sigma_t) * x_t - alpha_s * math.expm1(-h) * d, x0
