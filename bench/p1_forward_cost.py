"""What one network evaluation of a P1 UNet costs on this machine, for several widths and depths.

    python bench/p1_forward_cost.py --config 64,128:2 --config 64,128:4 --config 96,192:2 [--batch 200]

Each ``--config CHANNELS:MID_BLOCKS`` builds the conditional UNet with those channels per level and
that many middle blocks (random weights: the cost does not depend on their values), then times
``--rounds`` forward passes of ``--batch`` digits (a guided batch of ``hw2_1.sh`` is 200: 100 digits,
conditional and unconditional) in fp32 under ``torch.no_grad``, after ``--warmup`` untimed ones. It
prints the parameter count, the fastest and the median pass, and the median relative to the first
config, as a Markdown table. ``hw2_1.sh``'s wall time scales with (evaluations per digit) × (this cost).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from p1.model import ConditionalUNet, UNetConfig


def parse_config(text: str) -> UNetConfig:
    """``64,128:4`` → channels (64, 128) with 4 middle blocks."""
    try:
        channels, mid = text.split(":")
        return UNetConfig(channels=tuple(int(c) for c in channels.split(",")), mid_blocks=int(mid))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CHANNELS:MID_BLOCKS, e.g. 64,128:2") from None


def forward_seconds(model: ConditionalUNet, batch: int, rounds: int, warmup: int) -> list[float]:
    """Wall time of ``rounds`` fp32 forward passes of ``batch`` digits (after ``warmup`` untimed ones)."""
    config = model.config
    x = torch.randn(batch, config.in_channels, config.image_size, config.image_size)
    t = torch.full((batch,), 499)
    y = torch.arange(batch) % (config.num_classes + 1)
    times = []
    model.eval()
    with torch.no_grad():
        for i in range(warmup + rounds):
            start = time.perf_counter()
            model(x, t, y)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=parse_config, action="append", required=True, help="CHANNELS:MID_BLOCKS")
    p.add_argument("--batch", type=int, default=200, help="digits per forward pass")
    p.add_argument("--rounds", type=int, default=30, help="timed forward passes per config")
    p.add_argument("--warmup", type=int, default=3, help="untimed forward passes first")
    args = p.parse_args(argv)
    if min(args.batch, args.rounds) < 1 or args.warmup < 0:
        p.error("--batch and --rounds must be ≥ 1, --warmup ≥ 0")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line), "?")
    print(f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, batch {args.batch}\n")
    print("| channels | middle blocks | parameters | fastest (ms) | median (ms) | median relative to the first |")
    print("|---|---:|---:|---:|---:|---:|")
    first = None
    for config in args.config:
        torch.manual_seed(0)
        model = ConditionalUNet(config)
        times = forward_seconds(model, args.batch, args.rounds, args.warmup)
        params = sum(p.numel() for p in model.parameters())
        median = statistics.median(times)
        first = first or median
        channels = ", ".join(str(c) for c in config.channels)
        print(
            f"| ({channels}) | {config.mid_blocks} | {params / 1e6:.2f} M | {1000 * min(times):.1f} "
            f"| {1000 * median:.1f} | {median / first:.2f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
