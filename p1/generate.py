"""``hw2_1.sh``: draw 100 digits of each class with the conditional DDPM.

    python -m p1.generate OUT_DIR

Draws ``--oversample`` × 100 candidates per class (DDIM, classifier-free guidance), keeps the 100
that the ``--selector`` classifier is surest of (see ``p1.sampling.draw_digits``), and writes
exactly ``0_001.png … 9_100.png`` (28×28 RGB) into OUT_DIR and nothing else. The output is a pure
function of the checkpoints, the seed and the sampling settings: the starting noise is drawn on
the CPU from ``--seed``, and DDIM with η = 0 adds no other randomness.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from hw2lib.cli import UserError, exact_float32, pick_device, run_main
from hw2lib.images import check_output_dir, encode_png, signed_to_uint8, write_files_atomically
from p3.predict import load_classifier

from .sampling import SamplingConfig, draw_digits, load_model

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "ddpm_mnistm.pt"
DEFAULT_SELECTOR = Path(__file__).resolve().parent / "checkpoints" / "selector_mnistm.pt"
NUM_CLASSES = 10


def digit_file_names(per_class: int) -> list[str]:
    """``d_iii.png`` for every digit d and 1 ≤ i ≤ per_class, digit-major (the label order of generation)."""
    return [f"{d}_{i:03d}.png" for d in range(NUM_CLASSES) for i in range(1, per_class + 1)]


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """The flags every P1 sampling CLI shares (defaults from :class:`SamplingConfig`)."""
    d = SamplingConfig()
    p.add_argument(
        "--checkpoint", default=str(DEFAULT_CHECKPOINT), help="P1 model checkpoint (model.pt/best.pt layout)"
    )
    p.add_argument("--steps", type=int, default=d.steps, help="DDIM steps")
    p.add_argument("--guidance", type=float, default=d.guidance, help="classifier-free guidance scale (1 = none)")
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
        steps=args.steps, guidance=args.guidance, batch_size=args.batch_size, oversample=args.oversample
    )


def load_selector(args: argparse.Namespace, device: torch.device):
    """The candidate selector (a P3 ``DigitClassifier`` trained on MNIST-M), or None without oversampling."""
    return load_classifier(args.selector, device) if args.oversample > 1 else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p1.generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out_dir", help="folder for the 1000 PNGs (created if missing)")
    p.add_argument("--per-class", type=int, default=100, help="digits per class (the grader wants 100)")
    add_sampling_args(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    check_output_dir(args.out_dir)
    exact_float32()
    started = time.time()
    device = pick_device(args.device)
    model, schedule = load_model(args.checkpoint, device)
    digits, _, _ = draw_digits(
        model, schedule, args.per_class, args.seed, sampling_config(args), load_selector(args, device), progress=True
    )
    images = signed_to_uint8(digits)
    files = {name: encode_png(img) for name, img in zip(digit_file_names(args.per_class), images)}
    write_files_atomically(args.out_dir, files)
    print(f"wrote {len(files)} digits to {args.out_dir} in {time.time() - started:.1f} s")


if __name__ == "__main__":
    run_main(main)
