"""The face UNet filled with known weights, for tests and benchmarks (the course's weights are not public)."""

from __future__ import annotations

import math
import zlib

import torch

from p2.unet import UNet


def golden_init_(model: UNet) -> UNet:
    """Fill every state_dict entry but ``inv_freq`` deterministically (the golden forward pass's rule).

    Each entry is ``torch.randn(shape)`` from ``Generator().manual_seed(crc32(key))``, then scaled:
    ndim ≥ 2 → ÷ √(prod(shape[1:])); 1-D ``*weight`` → 1 + 0.1·r; other 1-D → 0.1·r.
    """
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("inv_freq"):
            continue
        r = torch.randn(value.shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode())))
        if value.dim() >= 2:
            r = r / math.sqrt(math.prod(value.shape[1:]))
        elif key.endswith("weight"):
            r = 1 + 0.1 * r
        else:
            r = 0.1 * r
        value.copy_(r)
    return model


def golden_unet() -> UNet:
    """The golden forward pass's network, in eval mode."""
    return golden_init_(UNet()).eval()


def tame_unet() -> UNet:
    """Golden weights with a weak input layer. With the golden fill alone the network is chaotic as a
    denoiser: a 1e-9 difference in x grows to O(1) within 50 DDIM steps, so no two correct
    implementations could agree. Shrinking ``down1`` makes ε depend gently on x, as a trained
    denoiser's does, and leaves a comparison sensitive to every sampler detail."""
    model = golden_unet()
    with torch.no_grad():
        model.down1.weight.mul_(0.02)
    return model
