"""Batch augmentations for digit images in [−1, 1], drawn from an explicit ``torch.Generator``.

Every function takes ``x`` (B, C, H, W) on any device and draws its random numbers on the CPU from
``gen``, so a run is repeatable on every device. What each one is for:

* :func:`random_affine`: MNIST-M digits sit in a 20×20 box inside 28×28, USPS and SVHN digits fill
  the frame, so the *source* is zoomed in (1.0–1.45); target views get a milder jitter.
* :func:`random_thickness`: one 3×3 grey-scale dilation or erosion: stroke widths differ between
  MNIST's pen, USPS's scanned and up-sampled strokes and printed house numbers.
* :func:`random_blur`: down-sample to 10–20 pixels and back: USPS was scanned at 16×16, SVHN crops
  are often soft, MNIST-M is sharp.
* :func:`random_polarity`: light-on-dark or dark-on-light (both occur in MNIST-M and SVHN).
* :func:`random_neighbours`: SVHN crops are squares around one digit of a house number, so parts of
  the digits beside it show at the left and right edges; MNIST-M digits stand alone.
* :func:`random_cutout`: a square of the image replaced by its mean: the strong view of
  self-training (FixMatch's Cutout) must be recognised from what is left.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _pick(n: int, prob: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """A (n, 1, 1, 1) bool mask, each entry True with probability ``prob``."""
    return (torch.rand(n, generator=gen) < prob).to(device).view(-1, 1, 1, 1)


def random_affine(
    x: torch.Tensor,
    gen: torch.Generator,
    zoom: tuple[float, float] = (0.9, 1.45),
    degrees: float = 12.0,
    shift: float = 0.1,
    aspect: float = 0.15,
) -> torch.Tensor:
    """Zoom (> 1 magnifies), ±``aspect`` aspect jitter, ±``degrees`` rotation, ±``shift`` translation."""
    n = x.shape[0]
    scale, ratio = _uniform(n, *zoom, gen), _uniform(n, 1 - aspect, 1 + aspect, gen)
    angle = _uniform(n, -degrees, degrees, gen) * math.pi / 180
    sx, sy = scale * ratio.sqrt(), scale / ratio.sqrt()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos() / sx, -angle.sin() / sx
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin() / sy, angle.cos() / sy
    theta[:, :, 2] = torch.stack([_uniform(n, -shift, shift, gen), _uniform(n, -shift, shift, gen)], dim=1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)  # border: keep the background


def random_thickness(x: torch.Tensor, gen: torch.Generator, prob: float = 0.5) -> torch.Tensor:
    """With probability ``prob``, a 3×3 dilation or (equally likely) erosion of the brighter regions."""
    n = x.shape[0]
    apply, dilate = _pick(n, prob, gen, x.device), _pick(n, 0.5, gen, x.device)
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return torch.where(apply, torch.where(dilate, dilated, eroded), x)


def random_blur(
    x: torch.Tensor, gen: torch.Generator, prob: float = 0.5, sizes: tuple[int, int] = (10, 20)
) -> torch.Tensor:
    """With probability ``prob``, down-sample to a random size in ``sizes`` (inclusive) and back up."""
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    apply = _pick(n, prob, gen, x.device)
    side = int(torch.randint(sizes[0], sizes[1] + 1, (1,), generator=gen))  # one size per batch
    small = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return torch.where(apply, F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False), x)


def random_polarity(x: torch.Tensor, gen: torch.Generator, prob: float = 0.5) -> torch.Tensor:
    """With probability ``prob``, invert the image (−x in [−1, 1])."""
    return torch.where(_pick(x.shape[0], prob, gen, x.device), -x, x)


def _stroke_sign(gray: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1, 1) +1 where the centre 12×12 is brighter than the rest (light strokes), else −1."""
    h, w = gray.shape[-2:]
    top, left = (h - 12) // 2, (w - 12) // 2
    centre = gray[..., top : top + 12, left : left + 12].flatten(1).sum(1)
    border = (gray.flatten(1).sum(1) - centre) / (h * w - 144)
    return torch.where(centre / 144 >= border, 1.0, -1.0).view(-1, 1, 1, 1)


def random_neighbours(
    x: torch.Tensor, gen: torch.Generator, prob: float = 0.5, offset: tuple[float, float] = (9.0, 15.0)
) -> torch.Tensor:
    """Grayscale images (replicated to 3 channels) where, independently on each side with probability
    ``prob``, another batch image's digit stands ``offset`` pixels (uniform) left or right of the centre one.

    Each image is turned to grey, standardised and oriented so its strokes are bright; the neighbours
    are composited with a pixel-wise maximum (their strokes show, their background mostly does not),
    and the result takes the centre image's orientation back. Values are standardised rather than in
    [−1, 1]: meant for a network with per-image standardised grayscale input (``--normalize image``).
    """
    n, w = x.shape[0], x.shape[-1]
    gray = x.mean(1, keepdim=True)
    flat = gray.flatten(1)
    z = (gray - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-3)
    sign = _stroke_sign(gray)
    bright = z * sign
    out = bright
    for side in (-1.0, 1.0):
        other = bright[torch.randperm(n, generator=gen).to(x.device)]
        dx = side * _uniform(n, *offset, gen) * 2 / w  # pixels → affine_grid's [−1, 1] units
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2] = 1.0, 1.0, -dx
        grid = F.affine_grid(theta.to(x.device), list(other.shape), align_corners=False)
        shifted = F.grid_sample(other, grid, padding_mode="border", align_corners=False)
        out = torch.where(_pick(n, prob, gen, x.device), torch.maximum(out, shifted), out)
    return (out * sign).expand(-1, 3, -1, -1).contiguous()


def random_cutout(x: torch.Tensor, gen: torch.Generator, prob: float = 1.0, size: int = 10) -> torch.Tensor:
    """With probability ``prob``, a ``size``×``size`` square at a random place (it may overhang the
    border) set to the image's per-channel mean."""
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    apply = _pick(n, prob, gen, x.device)
    top = torch.randint(-size // 2, h - size // 2, (n,), generator=gen).view(-1, 1, 1)
    left = torch.randint(-size // 2, w - size // 2, (n,), generator=gen).view(-1, 1, 1)
    rows, cols = torch.arange(h).view(1, -1, 1), torch.arange(w).view(1, 1, -1)
    square = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    square = square.to(x.device).unsqueeze(1) & apply
    return torch.where(square, x.mean((2, 3), keepdim=True), x)


def source_view(x: torch.Tensor, gen: torch.Generator, stroke: float = 0.5, neighbours: float = 0.0) -> torch.Tensor:
    """The labelled source as the target will look: zoomed in, either polarity and, each with
    probability ``stroke``, thicker/thinner strokes and a softer image; with ``neighbours`` > 0, parts of
    other digits beside the centre one (:func:`random_neighbours`, each side with that probability)."""
    if neighbours > 0:
        x = random_neighbours(x, gen, prob=neighbours)
    x = random_affine(random_thickness(x, gen, prob=stroke), gen)
    return random_polarity(random_blur(x, gen, prob=stroke), gen)


def target_view(x: torch.Tensor, gen: torch.Generator, stroke: float = 0.5) -> torch.Tensor:
    """A perturbed view of a target image whose label must not change (self-training's student input):
    mild affine jitter, either polarity and, each with probability ``stroke``, stroke width and blur."""
    x = random_affine(x, gen, zoom=(0.85, 1.15), degrees=15.0, shift=0.1)
    return random_polarity(random_blur(random_thickness(x, gen, prob=stroke), gen, prob=stroke), gen)


def strong_target_view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The strong view of self-training: :func:`target_view` with stroke width and blur each at
    probability 0.5, then a 10×10 :func:`random_cutout`."""
    return random_cutout(target_view(x, gen, stroke=0.5), gen)
