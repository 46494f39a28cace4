"""Drawing digits: classifier-free guidance as a thin ε-wrapper, and the shared DDIM sampler.

Guidance convention (Ho & Salimans, 2022, eq. 6 written with s = 1 + w):

    eps = eps_uncond + s · (eps_cond − eps_uncond)

so ``scale = 1`` is the plain conditional model, ``scale = 0`` the unconditional one, and
``scale > 1`` pushes samples towards their class.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from hw2lib.checkpoints import load_checkpoint, load_weights
from hw2lib.cli import UserError, finite_or_error
from hw2lib.ddim import DDIMSampler, StepCallback
from hw2lib.digit_cnn import load_digit_classifier
from hw2lib.dpm_solver import DPMSolverPP2M
from hw2lib.images import map_batches, signed_to_uint8
from hw2lib.schedule import NoiseSchedule

from .model import ConditionalUNet, UNetConfig

IMAGE_SHAPE = (3, 28, 28)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "ddpm_mnistm.pt"
DEFAULT_SELECTOR = Path(__file__).resolve().parent / "checkpoints" / "selector_mnistm.pt"
DEFAULT_WEAK = Path(__file__).resolve().parent / "checkpoints" / "ddpm_mnistm_weak.pt"  # autoguidance, when shipped


class ClassifierFreeGuidance:
    """``eps_fn(x, t)`` for fixed labels: one batched forward of [conditional; unconditional].

    With ``rescale = φ > 0`` (and the ``schedule``), the guided prediction is pulled back towards the
    conditional one's contrast (Lin et al. 2024, "Common diffusion noise schedules and sample steps
    are flawed", §3.4, applied to the x0 prediction): strong guidance over-saturates — our s = 5
    digits have 24 % more per-image contrast than real MNIST-M — and x0 is where that shows.

        x0_g = x0(eps_g),  x0_r = x0_g · std(x0_cond) / std(x0_g)  (per image, over C×H×W)
        x0   = φ · x0_r + (1 − φ) · x0_g,  and back to eps.
    """

    def __init__(
        self,
        model: ConditionalUNet,
        labels: torch.Tensor,
        scale: float,
        rescale: float = 0.0,
        schedule: Optional[NoiseSchedule] = None,
    ):
        if rescale and schedule is None:
            raise ValueError("guidance rescale needs the noise schedule")
        self.model, self.labels, self.scale, self.rescale, self.schedule = model, labels, scale, rescale, schedule

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.guided_and_conditional(x_t, t)[0]

    def guided_and_conditional(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(guided eps, conditional eps): the conditional branch too, for guidance built on top of this one."""
        if self.scale == 1.0:
            eps_cond = self.model(x_t, t, self.labels)
            return eps_cond, eps_cond
        null = torch.full_like(self.labels, self.model.null_label)
        eps_cond, eps_uncond = self.model(
            torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([self.labels, null])
        ).chunk(2)
        eps = eps_uncond + self.scale * (eps_cond - eps_uncond)
        return (eps if not self.rescale else self._rescaled(x_t, t, eps, eps_cond)), eps_cond

    def _rescaled(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, eps_cond: torch.Tensor) -> torch.Tensor:
        a = self.schedule.alpha_bar(t).view(-1, 1, 1, 1)
        root_a, root_1ma = a.sqrt(), (1.0 - a).sqrt()
        x0_guided = (x_t - root_1ma * eps) / root_a  # DDIM eq. 9
        x0_cond = (x_t - root_1ma * eps_cond) / root_a
        ratio = x0_cond.flatten(1).std(1) / x0_guided.flatten(1).std(1).clamp_min(1e-8)
        x0 = self.rescale * x0_guided * ratio.view(-1, 1, 1, 1) + (1.0 - self.rescale) * x0_guided
        return (x_t - root_a * x0) / root_1ma


class AutoGuidance:
    """``eps_fn(x, t)`` guided by a weaker copy of the same conditional model (Karras et al. 2024, eq. 2),
    optionally together with classifier-free guidance:

        eps = eps_c + (a − 1) · (eps_c − eps_weak_c) + (s − 1) · (eps_c − eps_uncond)

    with ``eps_c = model(x, t, y)``, ``eps_weak_c = weak(x, t, y)`` and ``eps_uncond = model(x, t, ∅)``.
    ``s = 1`` is pure autoguidance (``eps_weak_c + a · (eps_c − eps_weak_c)``); ``a = 1`` is plain
    classifier-free guidance (its rescale φ applies as usual). The weak branch sees the class too, so it pushes away from the weak
    model's errors (malformed, blurry digits) rather than from the unconditional distribution, which
    is what costs classifier-free guidance its variety.
    """

    def __init__(
        self,
        model: ConditionalUNet,
        weak: ConditionalUNet,
        labels: torch.Tensor,
        scale: float,
        cfg: float = 1.0,
        rescale: float = 0.0,
        schedule: Optional[NoiseSchedule] = None,
    ):
        self.weak, self.labels, self.scale = weak, labels, scale
        self.guidance = ClassifierFreeGuidance(model, labels, cfg, rescale, schedule)  # s and φ as usual

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps, eps_c = self.guidance.guided_and_conditional(x_t, t)  # one batched forward for both
        if self.scale == 1.0:
            return eps
        return eps + (self.scale - 1.0) * (eps_c - self.weak(x_t, t, self.labels))


SOLVERS = ("ddim", "dpm++2m")


@dataclass
class SamplingConfig:
    solver: str = "dpm++2m"  # "ddim" (η below) or "dpm++2m" (DPM-Solver++(2M), deterministic)
    steps: int = 10  # network evaluations (chosen by measurement: README "P1 results", bench/p1_sweep.py)
    guidance: float = 5.0  # classifier-free guidance scale s (1 = no guidance)
    autoguidance: float = 1.0  # autoguidance scale a by a weaker model (1 = none; needs the weak model)
    rescale: float = 1.0  # guidance rescale φ: the guided x0 gets the conditional x0's contrast (README: P1 front)
    trailing: bool = (
        True  # grid [T−1, T−1−T/steps, …] ("trailing") instead of [1 + …, 1] ("leading", the course's P2 grid)
    )
    eta: float = 0.0  # DDIM only; 0: deterministic
    batch_size: int = 100  # digits per forward pass (×2 with guidance); measured fastest on a 2-core CPU
    oversample: float = 1.0  # candidates drawn per kept digit; > 1 keeps those a selector is surest of

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
    weak: Optional[ConditionalUNet] = None,
) -> torch.Tensor:
    """Digits in [−1, 1] (N, 3, 28, 28) on the CPU for ``labels`` (N,) from ``noise`` (N, 3, 28, 28).

    Guidance is classifier-free (``config.guidance``) plus, when ``config.autoguidance`` ≠ 1,
    autoguidance by the ``weak`` model."""
    device = next(model.parameters()).device
    sampler = config.sampler(schedule)
    out = []
    chunks = list(zip(labels.split(config.batch_size), noise.split(config.batch_size)))
    for y, x_T in tqdm(chunks, desc="sampling", disable=not progress):
        y = y.to(device)
        if config.autoguidance == 1.0:
            eps_fn = ClassifierFreeGuidance(model, y, config.guidance, config.rescale, schedule)
        elif weak is None:
            raise UserError("autoguidance needs the weak model (--weak CHECKPOINT)")
        else:
            eps_fn = AutoGuidance(model, weak, y, config.autoguidance, config.guidance, config.rescale, schedule)
        out.append(sampler.sample(eps_fn, x_T.to(device), generator=generator, callback=callback).cpu())
    return finite_or_error(torch.cat(out), "the P1 model")


@torch.no_grad()
def draw_digits(
    model: ConditionalUNet,
    schedule: NoiseSchedule,
    per_class: int,
    seed: int,
    config: SamplingConfig,
    selector: Optional[nn.Module] = None,
    progress: bool = False,
    weak: Optional[ConditionalUNet] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``per_class`` digits of each class 0–9, digit-major: (images in [−1, 1], labels, noise rows).

    With a ``selector`` (a digit classifier returning ``(logits, features)`` for [−1, 1] RGB) and
    ``config.oversample > 1``, ``ceil(per_class · oversample)`` candidates are drawn per class and
    the ``per_class`` the selector gives the highest probability of their own class are kept, in
    candidate order: rejection sampling that drops the malformed tail of the generator. The third
    tensor holds each kept digit's row in ``initial_noise(10 · candidates, seed)``.
    """
    candidates = math.ceil(per_class * config.oversample) if selector is not None else per_class
    labels = torch.arange(10).repeat_interleave(candidates)
    x = generate(model, schedule, labels, initial_noise(len(labels), seed), config, progress=progress, weak=weak)
    keep = torch.arange(len(labels))
    if candidates > per_class:
        as_saved = signed_to_uint8(x).permute(0, 3, 1, 2)  # the selector sees what the PNGs will hold
        device = next(selector.parameters()).device
        probs = map_batches(lambda b: selector(b)[0].softmax(1), as_saved, config.batch_size, device)
        score = probs[torch.arange(len(labels)), labels].view(10, candidates)
        best = score.topk(per_class, dim=1).indices.sort(dim=1).values
        keep = (best + candidates * torch.arange(10).view(-1, 1)).flatten()
    return x[keep], labels[keep], keep


# The flags every P1 sampling command (hw2_1.sh, figures, sweep) shares.


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """The flags every P1 sampling CLI shares (defaults from :class:`SamplingConfig`)."""
    d = SamplingConfig()
    p.add_argument(
        "--checkpoint", default=str(DEFAULT_CHECKPOINT), help="P1 model checkpoint (model.pt/best.pt layout)"
    )
    p.add_argument("--solver", choices=SOLVERS, default=d.solver, help="sampler: DPM-Solver++(2M) or DDIM")
    p.add_argument("--steps", type=int, default=d.steps, help="sampler steps (network evaluations per digit)")
    p.add_argument(
        "--grid",
        choices=("trailing", "leading"),
        default="trailing" if d.trailing else "leading",
        help="timestep grid: trailing starts at t = T−1, leading ends at t = 1",
    )
    p.add_argument("--guidance", type=float, default=d.guidance, help="classifier-free guidance scale s (1 = none)")
    p.add_argument(
        "--autoguidance", type=float, default=d.autoguidance, help="autoguidance scale a by --weak (1 = none)"
    )
    p.add_argument("--rescale", type=float, default=d.rescale, help="guidance rescale φ in [0, 1] (0 = plain guidance)")
    p.add_argument("--weak", default=str(DEFAULT_WEAK), help="the weaker P1 checkpoint that autoguidance uses")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="digits per forward pass")
    p.add_argument(
        "--oversample", type=float, default=d.oversample, help="candidates per kept digit (1 = no selection)"
    )
    p.add_argument("--selector", default=str(DEFAULT_SELECTOR), help="MNIST-M classifier that picks among candidates")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    if args.oversample < 1 or args.steps < 1 or args.batch_size < 1:
        raise UserError("--oversample must be ≥ 1, --steps and --batch-size ≥ 1")
    return SamplingConfig(
        solver=args.solver,
        steps=args.steps,
        guidance=args.guidance,
        autoguidance=args.autoguidance,
        rescale=args.rescale,
        trailing=args.grid == "trailing",
        batch_size=args.batch_size,
        oversample=args.oversample,
    )


def load_weak(args: argparse.Namespace, device: torch.device) -> Optional[ConditionalUNet]:
    """The autoguidance model of ``--weak`` when ``--autoguidance`` ≠ 1, else None."""
    return load_model(args.weak, device)[0] if args.autoguidance != 1.0 else None


def load_selector(args: argparse.Namespace, device: torch.device):
    """The candidate selector (a P3 ``DigitClassifier`` trained on MNIST-M), or None without oversampling."""
    return load_digit_classifier(args.selector, device) if args.oversample > 1 else None
