"""A small class-conditional ε-prediction UNet for 28×28 RGB digits.

``model(x_t, t, y) -> eps``: ``x_t`` (B, 3, 28, 28) in [−1, 1] space, ``t`` (B,) long timestep
indices, ``y`` (B,) long labels in 0…num_classes, where ``num_classes`` itself is the learned
"no class" label used for classifier-free guidance (Ho & Salimans, 2022).

To fit a CPU budget the network works on 2×2 patches: ``PixelUnshuffle(2)`` turns the image into
14×14×12 (lossless), a two-level UNet runs at 14×14 and 7×7 (self-attention at 7×7 and in the
middle), and ``PixelShuffle(2)`` maps the 14×14×12 output back to 28×28×3. This costs ~4× less
than a UNet at full resolution for the same widths.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UNetConfig:
    in_channels: int = 3  # RGB
    image_size: int = 28  # H = W
    patch_size: int = 2  # space-to-depth factor before the UNet (1 = none)
    channels: tuple = (64, 128)  # width per resolution level, highest resolution first
    blocks_per_level: int = 1  # residual blocks per level on the way down (+1 on the way up)
    attention_levels: tuple = (1,)  # levels with self-attention after each block
    mid_blocks: int = 2  # residual blocks at the lowest resolution, self-attention after every other one
    num_classes: int = 10  # digits; label `num_classes` is the "no class" token
    dropout: float = 0.0  # dropout inside residual blocks
    groups: int = 16  # GroupNorm groups
    heads: int = 4  # attention heads

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"], d["attention_levels"] = list(self.channels), list(self.attention_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        d["channels"], d["attention_levels"] = tuple(d["channels"]), tuple(d["attention_levels"])
        return cls(**d)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al.) of integer timesteps (B,) → (B, dim), [sin, cos]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv ×2 with FiLM (scale, shift) from the time + class embedding."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv2(self.dropout(h))


class SelfAttention(nn.Module):
    """Multi-head self-attention over all positions, residual, zero-initialised output."""

    def __init__(self, channels: int, groups: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        # (b, heads, hw, c/heads) each, contiguous in the last dimension: torch 2.0's CUDA
        # memory-efficient kernel rejects anything else ("last dimension must be contiguous")
        q, k, v = qkv.transpose(-1, -2).contiguous().unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


class ResAttnBlock(nn.Module):
    """A residual block, optionally followed by self-attention."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, config: UNetConfig, attention: bool):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim, config.groups, config.dropout)
        self.attn = SelfAttention(c_out, config.groups, config.heads) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb))


class ConditionalUNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        widths, p = config.channels, config.patch_size
        if config.image_size % (p * 2 ** (len(widths) - 1)):
            raise ValueError(f"image_size {config.image_size} is not divisible by patch and down-sampling factors")
        emb_dim = 4 * widths[0]
        self.time_mlp = nn.Sequential(nn.Linear(widths[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(config.num_classes + 1, emb_dim)
        self.stem = nn.Sequential(nn.PixelUnshuffle(p), nn.Conv2d(config.in_channels * p * p, widths[0], 3, padding=1))

        self.down = nn.ModuleList()
        skip_channels, ch = [widths[0]], widths[0]
        for level, width in enumerate(widths):
            for _ in range(config.blocks_per_level):
                self.down.append(ResAttnBlock(ch, width, emb_dim, config, level in config.attention_levels))
                ch = width
                skip_channels.append(ch)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_channels.append(ch)
        self.mid = nn.ModuleList(
            [ResAttnBlock(ch, ch, emb_dim, config, attention=i % 2 == 0) for i in range(config.mid_blocks)]
        )

        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(config.blocks_per_level + 1):
                self.up.append(
                    ResAttnBlock(ch + skip_channels.pop(), width, emb_dim, config, level in config.attention_levels)
                )
                ch = width
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        out_conv = nn.Conv2d(ch, config.in_channels * p * p, 3, padding=1)
        nn.init.zeros_(out_conv.weight)
        nn.init.zeros_(out_conv.bias)
        self.out = nn.Sequential(nn.GroupNorm(config.groups, ch), nn.SiLU(), out_conv, nn.PixelShuffle(p))

    @property
    def null_label(self) -> int:
        """The label meaning "no class" (classifier-free guidance's unconditional branch)."""
        return self.config.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.channels[0])) + self.class_emb(y)
        h = self.stem(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResAttnBlock) else layer(h)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            h = layer(torch.cat([h, skips.pop()], dim=1), emb) if isinstance(layer, ResAttnBlock) else layer(h)
        return self.out(h)
