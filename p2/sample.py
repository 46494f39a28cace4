"""``hw2_2.sh``: DDIM (η = 0, 50 steps) from the course's noises through its face UNet.

    python -m p2.sample NOISE_DIR OUT_DIR UNET_PT

Every ``*.pt`` in NOISE_DIR (a float tensor of shape (1, 3, H, W) or (3, H, W), H and W multiples
of 32), taken in name order, becomes ``<stem>.png`` in OUT_DIR: the DDIM result, min–max
normalised per image and rounded as ``torchvision.utils.save_image`` does. This is the course's
reference procedure, which reproduces its ground truth to ~0.01 MSE (hw2lib/ddim.py names each step).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from hw2lib.checkpoints import load_file, load_weights
from hw2lib.cli import UserError, exact_float32, pick_device, run_main
from hw2lib.ddim import course_sampler, ddim_images
from hw2lib.files import OutputFolder, check_output_dir, list_files, require_path
from hw2lib.images import encode_png, minmax_to_uint8

from .unet import UNet

MAX_NOISE_ELEMENTS = 3 * 2048 * 2048  # 64× the course's 256×256 noises; larger ones are refused before use


def load_unet(path: str | os.PathLike, device: torch.device) -> UNet:
    """The course's UNet from a plain state_dict file, checked key by key (strict)."""
    state = load_file(path, "UNet state_dict")
    return load_weights(UNet(), state, str(path)).to(device).eval()


def load_noise(path: Path) -> torch.Tensor:
    """One noise file → float32 (3, H, W); rejects anything else with a one-line error."""
    noise = load_file(path, "noise tensor")
    if not isinstance(noise, torch.Tensor):
        raise UserError(f"{path}: expected a tensor, found {type(noise).__name__}")
    if noise.layout != torch.strided or noise.device.type != "cpu" or noise.is_quantized:
        raise UserError(
            f"{path}: expected a dense tensor with its values (found layout {noise.layout}, {noise.device})"
        )
    if math.prod(noise.shape) > MAX_NOISE_ELEMENTS:  # from the shape alone: nothing is allocated yet
        raise UserError(
            f"{path}: {tuple(noise.shape)} holds more than {MAX_NOISE_ELEMENTS:,} values (the course's noises are 3×256×256)"
        )
    image = noise[0] if noise.dim() == 4 and noise.shape[0] == 1 else noise
    if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point() or image.numel() == 0:
        raise UserError(
            f"{path}: expected a float tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(noise.shape)} {noise.dtype}"
        )
    if image.shape[1] % 32 or image.shape[2] % 32:
        raise UserError(
            f"{path}: H and W must be positive multiples of 32 (the UNet halves them 5 times), got {tuple(noise.shape)}"
        )
    if not torch.isfinite(image).all():
        raise UserError(f"{path}: holds NaN or infinite values (expected Gaussian noise)")
    return image.float().contiguous()


def load_noises(noise_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``{stem: noise}`` for every ``*.pt`` in ``noise_dir``, in name order."""
    return {p.stem: load_noise(p) for p in list_files(noise_dir, (".pt",), "noise tensors (*.pt)")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p2.sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("noise_dir", help="folder of noise tensors NN.pt")
    p.add_argument("out_dir", help="folder to write NN.png into (created if missing)")
    p.add_argument("unet", help="the course's UNet state_dict (UNet.pt)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (the course uses 50)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM η (the course uses 0)")
    p.add_argument("--seed", type=int, default=0, help="seed for the per-step noise when η > 0")
    p.add_argument("--batch-size", type=int, default=10, help="noises per forward pass")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    require_path(args.unet, "the UNet checkpoint")
    noises = load_noises(args.noise_dir)
    names = [f"{stem}.png" for stem in noises]
    check_output_dir(args.out_dir, names)
    exact_float32()
    device = pick_device(args.device)
    unet = load_unet(args.unet, device)
    sampler = course_sampler(args.steps, args.eta)
    generator = torch.Generator().manual_seed(args.seed)
    files = {}
    with OutputFolder(args.out_dir, names) as out:  # made and checked for writing before sampling
        for shape in sorted({n.shape for n in noises.values()}):  # one batch stream per image size
            stems = [k for k, n in noises.items() if n.shape == shape]
            x_T = torch.stack([noises[k] for k in stems])
            samples = ddim_images(unet, x_T, sampler, args.batch_size, device, generator, progress=True)
            files.update({f"{stem}.png": encode_png(img) for stem, img in zip(stems, minmax_to_uint8(samples))})
        out.commit(dict(sorted(files.items())))
    print(f"wrote {len(files)} images to {args.out_dir}")
    print(f"device: {device}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
