"""Fréchet distance between generated and real digits, in the features of our own MNIST-M classifier.

FID (Heusel et al. 2017) fits a Gaussian to each set's features and measures

    d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)

Inception features mean nothing on 28×28 digits, so the features here are the 256-d penultimate
layer of our own MNIST-M classifier (``p1/checkpoints/features_mnistm.pt``: the shared digit CNN
trained on MNIST-M train, 95.2 % on its val) — never the grader's LeNet, which would reward exactly
what it grades.

A Fréchet distance has a finite-sample bias that grows as the sets shrink, so a number alone says
little. Every distance here comes with its **floor**: real MNIST-M val is split in two halves by a
seeded, class-stratified permutation; the generated set is compared with half B, and a real set of
the *same size and class counts* drawn from half A is compared with half B too. A generator that
matched MNIST-M perfectly would score the floor, up to sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from hw2lib.digit_cnn import penultimate_features

FEATURES_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "features_mnistm.pt"


def psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues < 0,
    which round-off can produce, are treated as 0)."""
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    return (vectors * eigenvalues.clamp_min(0).sqrt()) @ vectors.T


def gaussian_fit(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D), in float64, of ``features`` (N, D), N ≥ 2."""
    f = features.double()
    return f.mean(0), torch.cov(f.T)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """d² between Gaussians fitted to ``features_a`` (N, D) and ``features_b`` (M, D) (equation above).

    The cross term uses tr((Σ_a^½ Σ_b Σ_a^½)^½), whose argument is symmetric PSD, so it is computed
    with two symmetric eigendecompositions instead of a general matrix square root.
    """
    mu_a, cov_a = gaussian_fit(features_a)
    mu_b, cov_b = gaussian_fit(features_b)
    root_a = psd_sqrt(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return ((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross).item()


def digit_features(classifier: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Penultimate features (N, D) of a digit classifier for uint8 images (N, 3, 28, 28)."""
    return penultimate_features(classifier, images)[1]


def stratified_halves(labels: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of two disjoint halves of ``labels`` (N,) with (nearly) equal counts of every class."""
    gen = torch.Generator().manual_seed(seed)
    half_a, half_b = [], []
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        half_a.append(idx[: len(idx) // 2])
        half_b.append(idx[len(idx) // 2 :])
    return torch.cat(half_a), torch.cat(half_b)


@dataclass
class FrechetScore:
    distance: float  # generated vs real half B
    floor: float  # real digits from half A, same size and class counts, vs half B


@dataclass
class FrechetReport:
    overall: FrechetScore
    per_class: dict[int, FrechetScore]
    reference_size: int  # images in half B


class FrechetReference:
    """Real digits' features split into a reference half B and a floor half A (see the module docstring)."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, seed: int = 0):
        self.seed = seed
        self.floor_index, b = stratified_halves(labels, seed)  # floor_index: half A's rows of ``features``
        self.floor_features, self.floor_labels = features[self.floor_index], labels[self.floor_index]
        self.ref_features, self.ref_labels = features[b], labels[b]

    def real_sample(
        self, counts: dict[int, int], eligible: Optional[torch.Tensor] = None, rank: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Features of half-A digits with the given count of each class: the first ones of a seeded
        shuffle or, with ``rank`` (one value per half-A digit), the highest-ranked (ties in index order);
        ``eligible`` (a bool per half-A digit) restricts the choice."""
        gen = torch.Generator().manual_seed(self.seed + 1)
        picks = []
        for c, n in counts.items():
            mask = self.floor_labels == c
            if eligible is not None:
                mask &= eligible
            idx = mask.nonzero().squeeze(1)
            if n > len(idx):
                raise ValueError(f"class {c}: {n} generated digits but only {len(idx)} real ones to compare with")
            order = (
                torch.randperm(len(idx), generator=gen)
                if rank is None
                else rank[idx].argsort(descending=True, stable=True)
            )
            picks.append(idx[order[:n]])
        return self.floor_features[torch.cat(picks)]

    def distance(self, features: torch.Tensor) -> float:
        """Fréchet distance of ``features`` to half B."""
        return frechet_distance(features, self.ref_features)

    def score(self, features: torch.Tensor, labels: torch.Tensor) -> FrechetReport:
        """Overall and per-class distances of generated ``features`` (N, D) with ``labels`` (N,)."""
        counts = {int(c): int((labels == c).sum()) for c in labels.unique()}
        overall = FrechetScore(self.distance(features), self.distance(self.real_sample(counts)))
        per_class = {
            c: FrechetScore(
                frechet_distance(features[labels == c], self.ref_features[self.ref_labels == c]),
                frechet_distance(self.real_sample({c: n}), self.ref_features[self.ref_labels == c]),
            )
            for c, n in counts.items()
        }
        return FrechetReport(overall, per_class, len(self.ref_labels))
