"""Drawing digits: classifier-free guidance as a thin ε-wrapper over the shared few-step samplers.

Guidance convention (Ho & Salimans, 2022, eq. 6 written with s = 1 + w):

    eps = eps_uncond + s · (eps_cond − eps_uncond)

so ``scale = 1`` is the plain conditional model, ``scale = 0`` the unconditional one, and
``scale > 1`` pushes samples towards their class.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from tqdm.auto import tqdm

from hw2lib.checkpoints import load_checkpoint, load_weights
from hw2lib.cli import UserError, finite_or_error
from hw2lib.ddim import DDIMSampler, StepCallback
from hw2lib.dpm_solver import DPMSolverPP2M
from hw2lib.schedule import NoiseSchedule

from .model import ConditionalUNet, UNetConfig

IMAGE_SHAPE = (3, 28, 28)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "ddpm_mnistm.pt"


class ClassifierFreeGuidance:
    """``eps_fn(x, t)`` for fixed labels: one batched forward of [conditional; unconditional].

    With ``rescale = φ > 0``, the guided prediction is pulled back towards the conditional one's
    contrast (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed", §3.4,
    applied to the x0 prediction): strong guidance over-saturates, and x0 is where that shows.

        x0_g = x0(eps_g),  x0_r = x0_g · std(x0_cond) / std(x0_g)  (per image, over C×H×W)
        x0   = φ · x0_r + (1 − φ) · x0_g,  and back to eps.

    With an ``interval`` (lo, hi), guidance applies only at timesteps lo ≤ t ≤ hi and elsewhere the
    conditional prediction is used alone, at half the cost (Kynkäänniemi et al. 2024, "Applying
    guidance in a limited interval improves sample and distribution quality").
    """

    def __init__(
        self,
        model: ConditionalUNet,
        labels: torch.Tensor,
        scale: float,
        schedule: NoiseSchedule,
        rescale: float = 0.0,
        interval: Optional[tuple[int, int]] = None,
    ):
        self.model, self.labels, self.scale, self.schedule = model, labels, scale, schedule
        self.rescale, self.interval = rescale, interval
        self.timestep: Optional[int] = None  # told by the sampler before each evaluation (set_timestep)

    def set_timestep(self, t: int) -> None:
        """The sampler's hook: the integer timestep of the next evaluation (no device read-back needed)."""
        self.timestep = t

    def guided_at(self, t: torch.Tensor) -> bool:
        """Whether the evaluation at timesteps ``t`` (B,) is guided. With an interval it needs the step's
        integer timestep: the one the sampler told, else ``t[0]`` read back (every image shares it)."""
        if self.scale == 1.0 or self.interval is None:
            return self.scale != 1.0
        step = self.timestep if self.timestep is not None else int(t[0])
        return self.interval[0] <= step <= self.interval[1]

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not self.guided_at(t):
            return self.model(x_t, t, self.labels)
        null = torch.full_like(self.labels, self.model.null_label)
        eps_cond, eps_uncond = self.model(
            torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([self.labels, null])
        ).chunk(2)
        eps = eps_uncond + self.scale * (eps_cond - eps_uncond)
        return eps if not self.rescale else self._rescaled(x_t, t, eps, eps_cond)

    def _rescaled(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, eps_cond: torch.Tensor) -> torch.Tensor:
        a = self.schedule.alpha_bar(t).view(-1, 1, 1, 1)
        x0_guided = NoiseSchedule.predict_x0(x_t, eps, a)
        x0_cond = NoiseSchedule.predict_x0(x_t, eps_cond, a)
        ratio = x0_cond.flatten(1).std(1) / x0_guided.flatten(1).std(1).clamp_min(1e-8)
        x0 = self.rescale * x0_guided * ratio.view(-1, 1, 1, 1) + (1.0 - self.rescale) * x0_guided
        return NoiseSchedule.predict_eps(x_t, x0, a)


SOLVERS = ("ddim", "dpm++2m")


@dataclass
class SamplingConfig:
    solver: str = "dpm++2m"  # "ddim" (η below) or "dpm++2m" (DPM-Solver++(2M), deterministic)
    steps: int = 10  # network evaluations (chosen by measurement: README "P1 results", studies/p1_sweep.py)
    guidance: float = 3.0  # classifier-free guidance scale s (1 = no guidance; chosen on the front, docs/p1-studies.md)
    rescale: float = 1.0  # guidance rescale φ: the guided x0 gets the conditional x0's contrast (docs/p1-studies.md)
    interval: Optional[tuple[int, int]] = (0, 499)  # guide only at lo ≤ t ≤ hi (None: every step; docs/p1-studies.md)
    trailing: bool = (
        True  # grid [T−1, T−1−T/steps, …] ("trailing") instead of [1 + …, 1] ("leading", the course's P2 grid)
    )
    eta: float = 0.0  # DDIM only; 0: deterministic
    batch_size: int = 100  # digits per forward pass (×2 with guidance); measured fastest on a 2-core CPU

    def guidance_label(self) -> str:
        """The guidance part of this setting in words, e.g. ``s = 3, φ = 1, t ≤ 499`` (table titles, logs)."""
        label = f"s = {self.guidance:g}, φ = {self.rescale:g}"
        if self.interval is not None:
            lo, hi = self.interval
            label += f", t ≤ {hi}" if lo == 0 else f", {lo} ≤ t ≤ {hi}"
        return label

    def sampler(self, schedule: NoiseSchedule) -> DDIMSampler | DPMSolverPP2M:
        """The configured sampler over ``schedule``."""
        if self.solver not in SOLVERS:
            raise UserError(f"unknown solver {self.solver!r} (expected one of {', '.join(SOLVERS)})")
        offset = schedule.num_timesteps // self.steps - 1 if self.trailing else 1
        if self.solver == "ddim":
            return DDIMSampler(schedule, num_inference_steps=self.steps, steps_offset=offset, eta=self.eta)
        return DPMSolverPP2M(schedule, num_inference_steps=self.steps, steps_offset=offset)


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[ConditionalUNet, NoiseSchedule]:
    """Rebuild the UNet and its schedule from a checkpoint's stored config (fp16 weights → fp32)."""
    ckpt = load_checkpoint(path, required=("model", "config", "schedule"))
    try:
        model = ConditionalUNet(UNetConfig.from_dict(ckpt["config"]))
        schedule = NoiseSchedule(**ckpt["schedule"])
    except (TypeError, ValueError, KeyError) as err:
        raise UserError(f"{path}: checkpoint config does not describe a P1 model ({err})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    load_weights(model, state, str(path))
    return model.to(device).eval(), schedule


def initial_noise(n: int, seed: int) -> torch.Tensor:
    """x_T for ``n`` images, drawn on the CPU so that every device starts from the same noise."""
    return torch.randn((n, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(
    model: ConditionalUNet,
    schedule: NoiseSchedule,
    labels: torch.Tensor,
    noise: torch.Tensor,
    config: SamplingConfig,
    generator: Optional[torch.Generator] = None,
    callback: Optional[StepCallback] = None,
    progress: bool = False,
) -> torch.Tensor:
    """Digits in [−1, 1] (N, 3, 28, 28) on the CPU for ``labels`` (N,) from ``noise`` (N, 3, 28, 28),
    with classifier-free guidance as ``config`` sets it, in batches of ``config.batch_size``. Always
    in float32, even inside a caller's autocast region (the grader's GPU has no fast bf16)."""
    device = next(model.parameters()).device
    sampler = config.sampler(schedule)
    out = []
    chunks = list(zip(labels.split(config.batch_size), noise.split(config.batch_size)))
    for y, x_T in tqdm(chunks, desc="sampling", disable=not progress):
        y = y.to(device)
        eps_fn = ClassifierFreeGuidance(model, y, config.guidance, schedule, config.rescale, config.interval)
        with fp32_region(device):
            out.append(sampler.sample(eps_fn, x_T.to(device), generator=generator, callback=callback).cpu())
    return finite_or_error(torch.cat(out), "the P1 model")


def fp32_region(device: torch.device):
    """A block in which a caller's autocast is off (devices without autocast need nothing)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def class_labels(per_class: int) -> torch.Tensor:
    """``per_class`` labels of each digit 0–9, digit-major (the order of ``hw2_1.sh``'s files)."""
    return torch.arange(10).repeat_interleave(per_class)


def draw_digits(
    model: ConditionalUNet,
    schedule: NoiseSchedule,
    per_class: int,
    seed: int,
    config: SamplingConfig,
    progress: bool = False,
    generator: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` digits of each class 0–9, digit-major, from ``initial_noise(10 · per_class, seed)``:
    (images in [−1, 1], labels). ``generator`` feeds a stochastic sampler (DDIM with η > 0) its noise."""
    labels = class_labels(per_class)
    x_T = initial_noise(len(labels), seed)
    return generate(model, schedule, labels, x_T, config, generator=generator, progress=progress), labels


# The flags every P1 sampling command (hw2_1.sh, figures, sweep) shares.


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """The flags every P1 sampling CLI shares (defaults from :class:`SamplingConfig`)."""
    d = SamplingConfig()
    p.add_argument(
        "--checkpoint", default=str(DEFAULT_CHECKPOINT), help="P1 model checkpoint (model.pt/best.pt layout)"
    )
    p.add_argument("--solver", choices=SOLVERS, default=d.solver, help="sampler: DPM-Solver++(2M) or DDIM")
    p.add_argument("--steps", type=int, default=d.steps, help="sampler steps (network evaluations per digit)")
    p.add_argument("--guidance", type=float, default=d.guidance, help="classifier-free guidance scale s (1 = none)")
    p.add_argument("--rescale", type=float, default=d.rescale, help="guidance rescale φ in [0, 1] (0 = plain guidance)")
    p.add_argument(
        "--interval",
        type=int,
        nargs=2,
        metavar=("LO", "HI"),
        default=d.interval,
        help=f"guide only at timesteps LO ≤ t ≤ HI (default: {d.interval[0]} {d.interval[1]}; 0 999: every step)",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="digits per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    if args.steps < 1 or args.batch_size < 1:
        raise UserError("--steps and --batch-size must be ≥ 1")
    return SamplingConfig(
        solver=args.solver,
        steps=args.steps,
        guidance=args.guidance,
        rescale=args.rescale,
        interval=tuple(args.interval) if args.interval else None,
        batch_size=args.batch_size,
    )
