"""``hw2_3.sh``: label every target-domain image in a folder and write ``image_name,label`` CSV.

    python -m p3.predict TEST_DIR OUT_CSV [--checkpoint PATH]

The domain comes from the path: it must contain ``svhn`` or ``usps`` (case-insensitive), not both,
and picks ``p3/checkpoints/<domain>_dann-plus.pt``. Every .png/.jpg/.jpeg in TEST_DIR, in name order, gets
one row; grayscale, RGBA and odd-sized images are converted to 28×28 RGB first.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from hw2lib.checkpoints import load_checkpoint, load_weights
from hw2lib.cli import UserError, exact_float32, pick_device, run_main
from hw2lib.digits import read_images
from hw2lib.images import list_images, write_text_atomically

from .model import ClassifierConfig, DigitClassifier, predict_labels

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DOMAINS = ("svhn", "usps")
SHIPPED_METHOD = "dann-plus"  # the best row of the README's table: what hw2_3.sh uses


def shipped_checkpoint(domain: str, method: str = SHIPPED_METHOD) -> Path:
    """``p3/checkpoints/<domain>_<method>.pt``: every row of the report's table is shipped."""
    return CHECKPOINT_DIR / f"{domain}_{method}.pt"


def detect_domain(path: str | os.PathLike) -> str:
    """``svhn`` or ``usps`` from the substring in ``path``; neither or both is a UserError."""
    lowered = str(path).lower()
    found = [d for d in DOMAINS if d in lowered]
    if len(found) != 1:
        why = "neither" if not found else "both"
        raise UserError(f"{path}: the path contains {why} of 'svhn' and 'usps'; it must name exactly one target domain")
    return found[0]


def load_classifier(path: str | os.PathLike, device: torch.device) -> DigitClassifier:
    ckpt = load_checkpoint(path, required=("model", "config"))
    try:
        model = DigitClassifier(ClassifierConfig(**ckpt["config"]))
    except TypeError as err:
        raise UserError(f"{path}: checkpoint config does not describe a P3 classifier ({err})") from None
    return load_weights(model, ckpt["model"], str(path)).to(device).eval()


@torch.no_grad()
def predict_folder(model: DigitClassifier, files: list[Path]) -> list[int]:
    return predict_labels(model, read_images(files)).tolist()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p3.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("test_dir", help="folder of target-domain images; its path names svhn or usps")
    p.add_argument("out_csv", help="CSV to write (image_name,label)")
    p.add_argument("--checkpoint", help="classifier checkpoint (default: p3/checkpoints/<domain>_dann-plus.pt)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    domain = detect_domain(args.test_dir)
    exact_float32()
    if Path(args.out_csv).is_dir():
        raise UserError(f"{args.out_csv}: is a directory (expected a CSV file path)")
    files = list_images(args.test_dir)
    model = load_classifier(args.checkpoint or shipped_checkpoint(domain), pick_device(args.device))
    labels = predict_folder(model, files)
    rows = ["image_name,label"] + [f"{f.name},{y}" for f, y in zip(files, labels)]
    write_text_atomically(args.out_csv, "\n".join(rows) + "\n")
    print(f"{domain}: wrote {len(files)} predictions to {args.out_csv}")


if __name__ == "__main__":
    run_main(main)
