"""Score generated digits: the grader's LeNet accuracy and, with ``--real``, the Fréchet distance to
real MNIST-M digits, overall and per digit, beside three real-data references.

    python -m p1.evaluate OUT_DIR --classifier Classifier.pth \
        [--real hw2_data/digits/mnistm] [--grid grid.png]

As the grader does, every file in the folder is read as RGB and labelled by ``int(name[0])``.
Accuracy alone rewards a generator that draws one perfect digit per class; the Fréchet distance
(``p1/frechet.py``: features of our own MNIST-M classifier, against half B of MNIST-M val) is what
shows lost variety. Printed beside it, each with the generated set's count of every digit, drawn
from half A of MNIST-M val:

* the **floor**: real digits; what a generator that matched MNIST-M would reach;
* real digits **the LeNet reads correctly**: what a perfectly accurate generator could reach;
* the real digits **the LeNet is surest of**, per class: what collapse onto typical shapes looks like.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from hw2lib.cli import UserError, run_main
from hw2lib.digit_cnn import load_digit_classifier
from hw2lib.digits import load_split, read_images
from hw2lib.images import map_batches, save_grid

from .classifier import LeNet, load_lenet, per_digit_accuracy, predict
from .frechet import FEATURES_CHECKPOINT, FrechetReference, FrechetReport, digit_features


@dataclass
class RealData:
    """MNIST-M val in our features, split for the Fréchet distance, and how the grader's LeNet reads it."""

    reference: FrechetReference
    extractor: torch.nn.Module
    lenet_correct: torch.Tensor  # bool per half-A digit: the LeNet reads it correctly
    lenet_margin: torch.Tensor  # each half-A digit's own-class logit minus the LeNet's largest other logit

    def references(self, counts: dict[int, int]) -> dict[str, float]:
        """The three reference distances for a generated set with these counts of each digit."""
        r = self.reference
        return {
            "floor": r.distance(r.real_sample(counts)),
            "lenet_correct": r.distance(r.real_sample(counts, eligible=self.lenet_correct)),
            "lenet_surest": r.distance(r.real_sample(counts, rank=self.lenet_margin)),
        }


def load_real(mnistm_root: str | Path, lenet: LeNet, features_path: str | Path = FEATURES_CHECKPOINT) -> RealData:
    """MNIST-M val in the features of the classifier at ``features_path`` (on the CPU)."""
    extractor = load_digit_classifier(features_path, torch.device("cpu"))
    images, labels = load_split(mnistm_root, "val")
    reference = FrechetReference(digit_features(extractor, images), labels)
    with torch.no_grad():
        logits = map_batches(lenet, images, 1000)[reference.floor_index]
    own = reference.floor_labels
    return RealData(reference, extractor, logits.argmax(1) == own, logit_margin(logits, own))


def logit_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How sure a classifier is of each row's own class: its logit minus the largest other logit
    (negative where it reads another class). Ranks digits where the softmax has saturated: hundreds of
    MNIST-M digits get probability 1.0 in fp32, and which of them came first then depended on the torch
    build's last bits."""
    rows = torch.arange(len(labels))
    own = logits[rows, labels]
    others = logits.clone()
    others[rows, labels] = float("-inf")
    return own - others.max(1).values


@dataclass
class DigitScores:
    accuracy: float
    per_digit: dict[int, float]
    frechet: Optional[FrechetReport] = None
    references: Optional[dict[str, float]] = None


def score_digits(images: torch.Tensor, labels: torch.Tensor, lenet: LeNet, real: Optional[RealData] = None):
    """Scores of uint8 digits (N, 3, 28, 28) with their intended ``labels`` (N,)."""
    preds = predict(lenet, images)
    scores = DigitScores((preds == labels).float().mean().item(), per_digit_accuracy(preds, labels))
    if real is not None:
        scores.frechet = real.reference.score(digit_features(real.extractor, images), labels)
        scores.references = real.references({int(c): int((labels == c).sum()) for c in labels.unique()})
    return scores


def read_folder(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (N, 3, 28, 28) and labels ``int(name[0])`` of every file in ``folder``, as the grader reads it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such directory (expected a folder of generated digits)")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        raise UserError(f"{folder}: empty (expected generated digits named <digit>_<index>.png)")
    bad = [p.name for p in files if not p.name[0].isdigit()]
    if bad:
        raise UserError(f"{folder / bad[0]}: file name does not start with its digit")
    return read_images(files), torch.tensor([int(p.name[0]) for p in files])


def report_lines(scores: DigitScores, n: int) -> list[str]:
    lines = [
        f"accuracy {scores.accuracy:.4f} on {n} images",
        "per digit: " + "  ".join(f"{d}: {a:.3f}" for d, a in sorted(scores.per_digit.items())),
    ]
    if scores.frechet is not None:
        o, refs = scores.frechet.overall, scores.references
        per = "  ".join(f"{d}: {s.distance:.2f} ({s.floor:.2f})" for d, s in sorted(scores.frechet.per_class.items()))
        lines += [
            f"Fréchet distance {o.distance:.3f} (reference: {scores.frechet.reference_size} MNIST-M val digits)",
            f"  real digits of the same count and mix (the floor): {refs['floor']:.3f}",
            f"  real digits the grader's LeNet reads correctly:    {refs['lenet_correct']:.3f}",
            f"  real digits the grader's LeNet is surest of:       {refs['lenet_surest']:.3f}",
            f"per digit (floor): {per}",
        ]
    return lines


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
        default=str(FEATURES_CHECKPOINT),
        help="MNIST-M classifier whose penultimate features the Fréchet distance uses (default: the shipped one)",
    )
    p.add_argument("--grid", help="also save a grid PNG: the first 10 images of each digit, one row per digit")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    images, labels = read_folder(args.folder)
    lenet = load_lenet(args.classifier)
    real = load_real(args.real, lenet, args.features) if args.real else None
    print("\n".join(report_lines(score_digits(images, labels, lenet, real), len(labels))))
    if args.grid:
        rows = [images[labels == d][:10] for d in sorted(labels.unique().tolist())]
        save_grid(torch.cat(rows).permute(0, 2, 3, 1), args.grid, nrow=10)
        print(f"grid: {args.grid}")


if __name__ == "__main__":
    run_main(main)
