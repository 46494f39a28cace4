"""Score a folder of generated digits: the grader's LeNet accuracy and, with ``--real``, the
Fréchet distance to real MNIST-M digits, overall and per digit.

    python -m p1.evaluate OUT_DIR --classifier ../shared/evaluator/Classifier.pth \
        [--real hw2_data/digits/mnistm] [--grid grid.png]

As the grader does, every file in the folder is read as RGB and labelled by ``int(name[0])``.
Accuracy alone rewards a generator that draws one perfect digit per class; the Fréchet distance
(``p1/frechet.py``: features of our own MNIST-M classifier, against MNIST-M val, printed beside the
floor that real digits of the same count reach) is what shows lost variety.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import torch

from hw2lib.cli import UserError, run_main
from hw2lib.digit_cnn import load_digit_classifier
from hw2lib.digits import load_split, read_images
from hw2lib.images import save_grid

from .classifier import load_lenet, per_digit_accuracy, predict
from .frechet import FrechetReference, FrechetReport, digit_features
from .sampling import DEFAULT_SELECTOR


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
    p.add_argument(
        "--real",
        help="a course-layout MNIST-M folder (…/digits/mnistm): also print the Fréchet distance to its val split",
    )
    p.add_argument(
        "--features",
        default=str(DEFAULT_SELECTOR),
        help="MNIST-M classifier whose penultimate features the Fréchet distance uses (default: the shipped one)",
    )
    p.add_argument("--grid", help="also save a grid PNG: the first 10 images of each digit, one row per digit")
    return p


def real_reference(mnistm_root: str | Path, features_path: str | Path) -> tuple[FrechetReference, torch.nn.Module]:
    """MNIST-M val in the features of the classifier at ``features_path`` (on the CPU), split in halves."""
    extractor = load_digit_classifier(features_path, torch.device("cpu"))
    images, labels = load_split(mnistm_root, "val")
    return FrechetReference(digit_features(extractor, images), labels), extractor


def frechet_lines(report: FrechetReport) -> list[str]:
    """The report as printed: overall distance and floor, then every digit's."""
    o = report.overall
    per = "  ".join(f"{d}: {s.distance:.2f} ({s.floor:.2f})" for d, s in sorted(report.per_class.items()))
    return [
        f"Fréchet distance {o.distance:.3f} (floor, real digits of the same count: {o.floor:.3f}; "
        f"reference: {report.reference_size} MNIST-M val digits)",
        f"per digit (floor): {per}",
    ]


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    acc, per_digit, images, labels = score_folder(args.folder, args.classifier)
    print(f"accuracy {acc:.4f} on {len(labels)} images")
    print("per digit: " + "  ".join(f"{d}: {a:.3f}" for d, a in sorted(per_digit.items())))
    if args.real:
        reference, extractor = real_reference(args.real, args.features)
        print("\n".join(frechet_lines(reference.score(digit_features(extractor, images), labels))))
    if args.grid:
        rows = [images[labels == d][:10] for d in sorted(per_digit)]
        save_grid(torch.cat(rows).permute(0, 2, 3, 1), args.grid, nrow=10)
        print(f"grid: {args.grid}")


if __name__ == "__main__":
    run_main(main)
