"""Score a folder of generated digits with the grader's LeNet, overall and per digit.

    python -m p1.evaluate OUT_DIR --classifier ../shared/evaluator/Classifier.pth [--grid grid.png]

As the grader does, every file in the folder is read as RGB and labelled by ``int(name[0])``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import torch

from hw2lib.cli import UserError, run_main
from hw2lib.digits import read_images
from hw2lib.images import save_grid

from .classifier import load_lenet, per_digit_accuracy, predict


def score_folder(
    folder: str | Path, classifier_path: str | Path
) -> tuple[float, dict[int, float], torch.Tensor, torch.Tensor]:
    """(accuracy, per-digit accuracy, images uint8 (N, 3, 28, 28), labels) for every file in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such directory (expected a folder of generated digits)")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        raise UserError(f"{folder}: empty (expected generated digits named <digit>_<index>.png)")
    bad = [p.name for p in files if not p.name[0].isdigit()]
    if bad:
        raise UserError(f"{folder / bad[0]}: file name does not start with its digit")
    labels = torch.tensor([int(p.name[0]) for p in files])
    images = read_images(files)
    preds = predict(load_lenet(classifier_path), images)
    return (preds == labels).float().mean().item(), per_digit_accuracy(preds, labels), images, labels


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p1.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folder", help="folder of generated digits (<digit>_<index>.png)")
    p.add_argument("--classifier", required=True, help="the grader's LeNet checkpoint (Classifier.pth)")
    p.add_argument("--grid", help="also save a grid PNG: the first 10 images of each digit, one row per digit")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    acc, per_digit, images, labels = score_folder(args.folder, args.classifier)
    print(f"accuracy {acc:.4f} on {len(labels)} images")
    print("per digit: " + "  ".join(f"{d}: {a:.3f}" for d, a in sorted(per_digit.items())))
    if args.grid:
        rows = [images[labels == d][:10] for d in sorted(per_digit)]
        save_grid(torch.cat(rows).permute(0, 2, 3, 1), args.grid, nrow=10)
        print(f"grid: {args.grid}")


if __name__ == "__main__":
    run_main(main)
