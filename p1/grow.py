"""Deepen a trained P1 model without changing what it computes, so training can go on at more capacity.

    python -m p1.grow p1/checkpoints/ddpm_mnistm.pt runs/grown.pt --mid-blocks 4
    python -m p1.train … --mid-blocks 4 --init-from runs/grown.pt

The new middle blocks (7×7, self-attention after every other one) start as the identity: a
residual block's last convolution and an attention block's output projection are zero-initialised
(p1/model.py), so the deeper UNet's prediction equals the checkpoint's for every input (Net2DeeperNet,
Chen et al. 2016, "Net2Net: accelerating learning via knowledge transfer"). Only their first layers
are drawn at random (from ``--seed``); training then moves them away from the identity. The grown
checkpoint holds the same weights as the source for every layer the two share, in fp16 as written.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

import torch

from hw2lib.checkpoints import load_checkpoint, save_checkpoint
from hw2lib.cli import UserError, run_main
from hw2lib.files import check_writable_file

from .model import ConditionalUNet, UNetConfig
from .sampling import load_model
from .train import inference_checkpoint


def deepen(model: ConditionalUNet, mid_blocks: int, seed: int = 0) -> ConditionalUNet:
    """A copy of ``model`` with ``mid_blocks`` middle blocks (≥ its own), the new ones the identity."""
    if mid_blocks < model.config.mid_blocks:
        raise UserError(f"--mid-blocks {mid_blocks} is fewer than the model's {model.config.mid_blocks}")
    config = UNetConfig.from_dict(model.config.to_dict() | {"mid_blocks": mid_blocks})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        deeper = ConditionalUNet(config)
    state = deeper.state_dict() | model.state_dict()  # every shared layer keeps its trained weights
    deeper.load_state_dict(state, strict=True)
    return deeper


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p1.grow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("source", help="a P1 inference checkpoint (p1.train's best.pt or model.pt)")
    p.add_argument("out", help="where to write the deeper checkpoint (p1.train --init-from reads it)")
    p.add_argument("--mid-blocks", type=int, required=True, help="middle blocks of the deeper model")
    p.add_argument("--seed", type=int, default=0, help="seed for the new blocks' first layers")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    out = check_writable_file(args.out, "the grown checkpoint")
    model, schedule = load_model(args.source, torch.device("cpu"))  # one error line for what is not a P1 model
    step = load_checkpoint(args.source).get("step")
    grown_from = {"config": model.config.to_dict(), "step": step}
    deeper = deepen(model, args.mid_blocks, args.seed)
    save_checkpoint(inference_checkpoint(deeper, schedule, step, grown_from=grown_from), out)
    print(f"{args.source} → {out}: {model.config.mid_blocks} → {args.mid_blocks} middle blocks")


if __name__ == "__main__":
    run_main(main)
