"""The course's face UNet (ε-prediction, 113,673,219 parameters), rebuilt from its state_dict layout.

``UNet()(x, t) -> eps``: ``x`` (B, 3, H, W) with H, W multiples of 32, ``t`` (B,) long timestep
indices. Module names follow the course's ``UNet.pt`` exactly (``down1…down18``, ``mid1-2``,
``up1…up23``, ``out``) so its state_dict loads with ``strict=True``. The layout is read off the
course's ``UNet.pt`` and checked key by key against its state_dict manifest in the tests.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TIME_DIM = 512  # width of the time embedding MLP's output
GROUPS = 32  # GroupNorm groups everywhere


class TimeEmbedding(nn.Module):
    """``cat[sin(t·f), cos(t·f)]`` with ``f = exp(arange(0, dim, 2) · (−ln 10000 / dim))`` (a buffer)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer(
            "inv_freq", torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.inv_freq[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, dropout: float = 0.1):
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(TIME_DIM, c_out))
        self.norm2 = nn.GroupNorm(GROUPS, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + (self.skip(x) if self.skip is not None else x)


class Attention(nn.Module):
    """Single-head self-attention over all H×W positions, softmax(q·k/√C), residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k) / math.sqrt(c), dim=-1)  # (b, hw_q, hw_k)
        y = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.out(y)


class Block(nn.Module):
    """A residual block, with self-attention after it when ``attention``."""

    def __init__(self, c_in: int, c_out: int, attention: bool = False):
        super().__init__()
        self.resblocks = ResidualBlock(c_in, c_out)
        self.attention = Attention(c_out) if attention else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        x = self.resblocks(x, temb)
        return self.attention(x) if self.attention is not None else x


def downsample(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, c, 3, stride=2, padding=1))


def upsample(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1))


# (name, kind, c_in, c_out, attention); kinds: "conv" (stem), "res", "down", "up"
DOWN_PATH = [
    ("down1", "conv", 3, 128, False),
    ("down2", "res", 128, 128, False),
    ("down3", "res", 128, 128, False),
    ("down4", "down", 128, 128, False),
    ("down5", "res", 128, 128, False),
    ("down6", "res", 128, 128, False),
    ("down7", "down", 128, 128, False),
    ("down8", "res", 128, 256, False),
    ("down9", "res", 256, 256, False),
    ("down10", "down", 256, 256, False),
    ("down11", "res", 256, 256, False),
    ("down12", "res", 256, 256, False),
    ("down13", "down", 256, 256, False),
    ("down14", "res", 256, 512, True),
    ("down15", "res", 512, 512, True),
    ("down16", "down", 512, 512, False),
    ("down17", "res", 512, 512, False),
    ("down18", "res", 512, 512, False),
]
MIDDLE = [("mid1", "res", 512, 512, True), ("mid2", "res", 512, 512, False)]
# c_in of an up "res" block counts the concatenated skip: [x, skip]
UP_PATH = [
    ("up1", "res", 1024, 512, False),
    ("up2", "res", 1024, 512, False),
    ("up3", "res", 1024, 512, False),
    ("up4", "up", 512, 512, False),
    ("up5", "res", 1024, 512, True),
    ("up6", "res", 1024, 512, True),
    ("up7", "res", 768, 512, True),
    ("up8", "up", 512, 512, False),
    ("up9", "res", 768, 256, False),
    ("up10", "res", 512, 256, False),
    ("up11", "res", 512, 256, False),
    ("up12", "up", 256, 256, False),
    ("up13", "res", 512, 256, False),
    ("up14", "res", 512, 256, False),
    ("up15", "res", 384, 256, False),
    ("up16", "up", 256, 256, False),
    ("up17", "res", 384, 128, False),
    ("up18", "res", 256, 128, False),
    ("up19", "res", 256, 128, False),
    ("up20", "up", 128, 128, False),
    ("up21", "res", 256, 128, False),
    ("up22", "res", 256, 128, False),
    ("up23", "res", 256, 128, False),
]


def _make(kind: str, c_in: int, c_out: int, attention: bool) -> nn.Module:
    if kind == "conv":
        return nn.Conv2d(c_in, c_out, 3, padding=1)
    if kind == "down":
        return downsample(c_in)
    if kind == "up":
        return upsample(c_in)
    return Block(c_in, c_out, attention)


class UNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.time = nn.Sequential(
            TimeEmbedding(128), nn.Linear(128, TIME_DIM), nn.SiLU(), nn.Linear(TIME_DIM, TIME_DIM)
        )
        for name, kind, c_in, c_out, attention in DOWN_PATH + MIDDLE + UP_PATH:
            self.add_module(name, _make(kind, c_in, c_out, attention))
        self.out = nn.Sequential(nn.GroupNorm(GROUPS, 128), nn.SiLU(), nn.Conv2d(128, 3, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"UNet input H and W must be multiples of 32, got {tuple(x.shape[-2:])}")
        temb = self.time(t)
        skips = []
        for name, kind, *_ in DOWN_PATH:
            layer = getattr(self, name)
            x = layer(x, temb) if kind == "res" else layer(x)
            skips.append(x)
        for name, *_ in MIDDLE:
            x = getattr(self, name)(x, temb)
        for name, kind, *_ in UP_PATH:
            layer = getattr(self, name)
            x = layer(torch.cat([x, skips.pop()], dim=1), temb) if kind == "res" else layer(x)
        return self.out(x)
