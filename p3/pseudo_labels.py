"""Self-training on the unlabelled target: where its labels come from, and what keeps them honest.

* :func:`confident_labels`: the labels a mean teacher is at least ``confidence`` sure of; the
  student learns them on perturbed views (FixMatch-style). Its weakness: a *confidently* wrong class stays
  wrong, because the model grades its own labels.
* :func:`centroid_labels`: SHOT's labels (Liang et al. 2020, §3.2): class centroids in feature space,
  weighted by the predicted probabilities, then each image takes its nearest centroid (cosine), and
  the centroids are re-estimated from those hard labels. An image that the head calls "4" but whose
  features sit among the 1s gets "1": the labels come from the target's own cluster structure.
* :func:`class_balance_loss`: KL(mean prediction ‖ uniform) over a batch (SHOT's diversity term,
  French et al.'s class balance): zero when the batch's predictions cover the classes evenly, large
  when they collapse onto a few, so self-training cannot drift into predicting one class.
* :func:`information_score`: a label-free quality measure of a model on target images (mean
  entropy minus entropy of the mean prediction; lower is better), used to report which checkpoint a
  rule without target labels would have picked.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hw2lib.digit_cnn import batch_statistics


def centroid_labels(features: torch.Tensor, probs: torch.Tensor, rounds: int = 2) -> torch.Tensor:
    """SHOT pseudo-labels (N,) for target ``features`` (N, D) and predicted ``probs`` (N, K).

    Centroids start as the probability-weighted means of the L2-normalised features; every round
    assigns each image to its nearest centroid by cosine similarity and re-estimates the centroids
    as the means of their members (a class left without members keeps its old centroid).
    """
    f = F.normalize(features.float(), dim=1)
    weights = probs.float()
    centroids = (weights.T @ f) / weights.sum(0).clamp_min(1e-8).unsqueeze(1)
    labels = (f @ F.normalize(centroids, dim=1).T).argmax(1)
    for _ in range(rounds):
        members = F.one_hot(labels, probs.shape[1]).float()
        counts = members.sum(0).unsqueeze(1)
        centroids = torch.where(counts > 0, (members.T @ f) / counts.clamp_min(1), centroids)
        labels = (f @ F.normalize(centroids, dim=1).T).argmax(1)
    return labels


def class_balance_loss(logits: torch.Tensor) -> torch.Tensor:
    """KL(p̄ ‖ uniform) = log K − H(p̄), with p̄ the batch's mean softmax: 0 for balanced predictions."""
    mean_prob = logits.softmax(1).mean(0)
    return math.log(logits.shape[1]) + (mean_prob * mean_prob.clamp_min(1e-8).log()).sum()


def mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean per-image entropy of the softmax (nats): low when each prediction is confident."""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()


def information_score(probs: torch.Tensor) -> float:
    """Mean per-image entropy minus entropy of the mean prediction (nats): low when predictions are
    confident *and* spread over the classes. Needs no labels."""
    entropy = -(probs * probs.clamp_min(1e-8).log()).sum(1).mean()
    mean_prob = probs.mean(0)
    return (entropy + (mean_prob * mean_prob.clamp_min(1e-8).log()).sum()).item()


@torch.no_grad()
def confident_labels(
    teacher: nn.Module, x_target: torch.Tensor, confidence: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean teacher's labels (B,) for clean target images and a float mask (B,) of those it is
    at least ``confidence`` sure of. The teacher normalises with the batch's statistics, no dropout,
    and is left exactly as it was: its running statistics are neither read nor updated, and its
    train/eval modes are restored (:func:`hw2lib.digit_cnn.batch_statistics`)."""
    with batch_statistics(teacher):
        probs = teacher(x_target)[0].softmax(1)
    conf, labels = probs.max(1)
    return labels, (conf >= confidence).float()


def pseudo_label_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against pseudo-labels, averaged over the whole batch; ``mask`` (B,) zeroes the
    images whose label is not trusted (None: all are)."""
    per_image = F.cross_entropy(logits, labels, reduction="none")
    return per_image.mean() if mask is None else (per_image * mask).mean()
