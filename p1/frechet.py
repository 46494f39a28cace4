"""Fréchet distance between generated and real digits, in the features of our own MNIST-M classifier.

FID (Heusel et al. 2017) fits a Gaussian to each set's features and measures

    d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)

Inception features mean nothing on 28×28 digits, so the features here are the 256-d penultimate
layer of the shipped MNIST-M classifier (``p1/checkpoints/selector_mnistm.pt``: the shared digit CNN
trained on MNIST-M train) — never the grader's LeNet, which would reward exactly what it grades.

A Fréchet distance has a finite-sample bias that grows as the sets shrink, so a number alone says
little. Every distance here comes with its **floor**: real MNIST-M val is split in two halves by a
seeded, class-stratified permutation; the generated set is compared with half B, and a real set of
the *same size and class counts* drawn from half A is compared with half B too. A generator that
matched MNIST-M perfectly would score the floor, up to sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hw2lib.images import map_batches


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


@torch.no_grad()
def digit_features(classifier: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Penultimate features (N, D) of a ``(logits, features)`` classifier for uint8 images (N, 3, 28, 28)."""
    classifier.eval()
    return map_batches(lambda x: classifier(x)[1], images, batch_size, next(classifier.parameters()).device)


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
        a, b = stratified_halves(labels, seed)
        self.floor_features, self.floor_labels = features[a], labels[a]
        self.ref_features, self.ref_labels = features[b], labels[b]

    def _floor_sample(self, counts: dict[int, int]) -> torch.Tensor:
        """Features of half-A digits with the given count of each class (the first ones of a seeded shuffle)."""
        gen = torch.Generator().manual_seed(self.seed + 1)
        picks = []
        for c, n in counts.items():
            idx = (self.floor_labels == c).nonzero().squeeze(1)
            if n > len(idx):
                raise ValueError(f"class {c}: {n} generated digits but only {len(idx)} real ones for the floor")
            picks.append(idx[torch.randperm(len(idx), generator=gen)[:n]])
        return self.floor_features[torch.cat(picks)]

    def score(self, features: torch.Tensor, labels: torch.Tensor) -> FrechetReport:
        """Overall and per-class distances of generated ``features`` (N, D) with ``labels`` (N,)."""
        counts = {int(c): int((labels == c).sum()) for c in labels.unique()}
        overall = FrechetScore(
            frechet_distance(features, self.ref_features),
            frechet_distance(self._floor_sample(counts), self.ref_features),
        )
        per_class = {
            c: FrechetScore(
                frechet_distance(features[labels == c], self.ref_features[self.ref_labels == c]),
                frechet_distance(self._floor_sample({c: n}), self.ref_features[self.ref_labels == c]),
            )
            for c, n in counts.items()
        }
        return FrechetReport(overall, per_class, len(self.ref_labels))
