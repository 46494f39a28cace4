"""Drawing digits: classifier-free guidance as a thin ε-wrapper, and the shared DDIM sampler.

Guidance convention (Ho & Salimans, 2022, eq. 6 written with s = 1 + w):

    eps = eps_uncond + s · (eps_cond − eps_uncond)

so ``scale = 1`` is the plain conditional model, ``scale = 0`` the unconditional one, and
``scale > 1`` pushes samples towards their class.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from hw2lib.checkpoints import load_checkpoint, load_weights
from hw2lib.cli import UserError
from hw2lib.ddim import DDIMSampler, StepCallback
from hw2lib.images import signed_to_uint8
from hw2lib.schedule import NoiseSchedule

from .model import ConditionalUNet, UNetConfig

IMAGE_SHAPE = (3, 28, 28)


class ClassifierFreeGuidance:
    """``eps_fn(x, t)`` for fixed labels: one batched forward of [conditional; unconditional]."""

    def __init__(self, model: ConditionalUNet, labels: torch.Tensor, scale: float):
        self.model, self.labels, self.scale = model, labels, scale

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return self.model(x_t, t, self.labels)
        null = torch.full_like(self.labels, self.model.null_label)
        eps_cond, eps_uncond = self.model(
            torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([self.labels, null])
        ).chunk(2)
        return eps_uncond + self.scale * (eps_cond - eps_uncond)


@dataclass
class SamplingConfig:
    steps: int = 20  # DDIM steps (chosen by measurement: README "P1 results", bench/p1_sweep.py)
    guidance: float = 5.0  # classifier-free guidance scale s (1 = no guidance; 5 measured best)
    eta: float = 0.0  # 0: deterministic DDIM
    batch_size: int = 500  # images per forward pass (×2 with guidance)
    oversample: float = 1.5  # candidates drawn per kept digit; > 1 keeps those a selector is surest of


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
    """Digits in [−1, 1] (N, 3, 28, 28) on the CPU for ``labels`` (N,) from ``noise`` (N, 3, 28, 28)."""
    device = next(model.parameters()).device
    sampler = DDIMSampler(schedule, num_inference_steps=config.steps, eta=config.eta)
    out = []
    chunks = list(zip(labels.split(config.batch_size), noise.split(config.batch_size)))
    for y, x_T in tqdm(chunks, desc="sampling", disable=not progress):
        eps_fn = ClassifierFreeGuidance(model, y.to(device), config.guidance)
        out.append(sampler.sample(eps_fn, x_T.to(device), generator=generator, callback=callback).cpu())
    return torch.cat(out)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """[−1, 1] floats → what the PNG file will hold, back in [−1, 1] (uint8 rounding applied)."""
    return signed_to_uint8(x).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@torch.no_grad()
def draw_digits(
    model: ConditionalUNet,
    schedule: NoiseSchedule,
    per_class: int,
    seed: int,
    config: SamplingConfig,
    selector: Optional[nn.Module] = None,
    progress: bool = False,
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
    x = generate(model, schedule, labels, initial_noise(len(labels), seed), config, progress=progress)
    keep = torch.arange(len(labels))
    if candidates > per_class:
        device = next(selector.parameters()).device
        probs = torch.cat([selector(quantize(c).to(device))[0].softmax(1).cpu() for c in x.split(config.batch_size)])
        score = probs[torch.arange(len(labels)), labels].view(10, candidates)
        best = score.topk(per_class, dim=1).indices.sort(dim=1).values
        keep = (best + candidates * torch.arange(10).view(-1, 1)).flatten()
    return x[keep], labels[keep], keep
