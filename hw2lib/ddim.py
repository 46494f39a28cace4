"""DDIM sampling (Song et al., 2021) as a small stepper over a :class:`NoiseSchedule`.

The network is any callable ``eps_fn(x_t, t) -> eps`` with ``x_t`` of shape (B, C, H, W) in the
model's [−1, 1] image space and ``t`` a LongTensor of shape (B,) holding integer timestep indices.
Randomness (the starting noise and, for η > 0, the per-step noise) always comes from the caller.

The edge cases are named settings, as in diffusers' ``DDIMScheduler``:

* ``steps_offset``      shifts the timestep grid ``range(0, T, T // steps)``; 1 gives [981, …, 1].
* ``set_alpha_to_one``  ᾱ used after the final step: False keeps ᾱ[0] = 1 − β_0 (the course's
                        reference), True uses 1 (a fully clean sample).
* ``clip_sample``       clamp the predicted x0 to [−1, 1] at every step.
* ``eta``               0 is deterministic DDIM, 1 recovers DDPM's posterior variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from .cli import finite_or_error
from .schedule import NoiseSchedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# called after every step with (t, s, x_s, x0_pred); s < 0 means "the clean end" (ᾱ = 1)
StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]


@dataclass
class TimestepGrid:
    """The timesteps a few-step sampler visits on a :class:`NoiseSchedule`, and ᾱ at each of them."""

    schedule: NoiseSchedule
    num_inference_steps: int = 50
    steps_offset: int = 1
    set_alpha_to_one: bool = False

    def __post_init__(self) -> None:
        T = self.schedule.num_timesteps
        if not 1 <= self.num_inference_steps <= T:
            raise ValueError(f"num_inference_steps must be in [1, {T}], got {self.num_inference_steps}")
        if self.timesteps()[0] >= T:
            raise ValueError(f"steps_offset={self.steps_offset} pushes the first timestep past {T - 1}")

    def timesteps(self) -> list[int]:
        """Descending timestep indices visited, e.g. [981, 961, …, 1] for T=1000, 50 steps, offset 1."""
        stride = self.schedule.num_timesteps // self.num_inference_steps
        return [i * stride + self.steps_offset for i in reversed(range(self.num_inference_steps))]

    def prev_timesteps(self) -> list[int]:
        """The timestep each step lands on: the next grid point, then 0 (ᾱ[0]) or −1 (ᾱ = 1) at the end."""
        return self.timesteps()[1:] + [-1 if self.set_alpha_to_one else 0]

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t in float64; t = −1 is the clean end (ᾱ = 1)."""
        return 1.0 if t < 0 else float(self.schedule.alphas_cumprod[t])

    def steps(self) -> list[tuple[int, int]]:
        """``(t, s)`` pairs, one per network evaluation: from t down to s."""
        return list(zip(self.timesteps(), self.prev_timesteps()))

    def update(
        self, eps: torch.Tensor, x_t: torch.Tensor, t: int, s: int, generator, last: bool, memory: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step x_t → x_s given the network's ``eps``; returns (x_s, x0_pred). ``last`` marks the
        final step and ``memory`` is a dict private to one :meth:`sample` call (multistep solvers
        keep their history there)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self,
        eps_fn: EpsFn,
        x_T: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        callback: Optional[StepCallback] = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Run the whole reverse process from noise ``x_T`` (B, C, H, W), one network evaluation per
        step; returns x_0 in [−1, 1]-ish space. ``callback(t, s, x_s, x0_pred)`` sees every step. An
        ``eps_fn`` with a ``set_timestep(t)`` method is told each step's integer timestep first."""
        x, memory, steps = x_T, {}, self.steps()
        for i, (t, s) in enumerate(tqdm(steps, desc=type(self).__name__, disable=not progress, leave=False)):
            if hasattr(eps_fn, "set_timestep"):
                eps_fn.set_timestep(t)
            t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            eps = eps_fn(x, t_batch).to(x.dtype)
            x, x0_pred = self.update(eps, x, t, s, generator, last=i == len(steps) - 1, memory=memory)
            if callback is not None:
                callback(t, s, x, x0_pred)
        return x


@dataclass
class DDIMSampler(TimestepGrid):
    clip_sample: bool = True
    eta: float = 0.0

    def step(
        self, eps: torch.Tensor, x_t: torch.Tensor, t: int, s: int, generator: Optional[torch.Generator] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDIM update x_t → x_s (DDIM eq. 12). Returns (x_s, x0_pred)."""
        a_t = torch.tensor(self.alpha_bar(t), dtype=torch.float32).to(x_t.device)
        a_s = torch.tensor(self.alpha_bar(s), dtype=torch.float32).to(x_t.device)
        x0_pred = self.schedule.predict_x0(x_t, eps, a_t)  # eq. 9, in float32 as the course computes it
        if self.clip_sample:
            x0_pred = x0_pred.clamp(-1.0, 1.0)
        sigma_t = self.eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()  # eq. 16
        dir_xt = (1 - a_s - sigma_t**2).clamp(min=0).sqrt() * eps
        x_s = a_s.sqrt() * x0_pred + dir_xt
        if self.eta > 0:
            if generator is None:
                raise ValueError("eta > 0 needs a torch.Generator: samplers never draw from the global RNG")
            z = torch.randn(x_t.shape, generator=generator, device=generator.device, dtype=x_t.dtype)
            x_s = x_s + sigma_t * z.to(x_t.device)
        return x_s, x0_pred

    def update(self, eps, x_t, t, s, generator, last, memory):
        return self.step(eps, x_t, t, s, generator)


def course_sampler(steps: int = 50, eta: float = 0.0) -> DDIMSampler:
    """The reference DDIM: linear β schedule, grid [981, …, 1], ᾱ[0] at the end, x0 clipped."""
    return DDIMSampler(
        NoiseSchedule(), num_inference_steps=steps, steps_offset=1, set_alpha_to_one=False, clip_sample=True, eta=eta
    )


@torch.no_grad()
def ddim_images(
    eps_fn: EpsFn,
    x_T: torch.Tensor,
    sampler: DDIMSampler,
    batch_size: int,
    device: torch.device,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
) -> torch.Tensor:
    """Samples (N, 3, H, W) on the CPU from noises ``x_T`` (N, 3, H, W), ``batch_size`` at a time."""
    out = []
    for chunk in tqdm(x_T.split(batch_size), desc="DDIM batches", disable=not progress):
        out.append(sampler.sample(eps_fn, chunk.to(device), generator=generator, progress=progress).cpu())
    return finite_or_error(torch.cat(out), "the UNet")
