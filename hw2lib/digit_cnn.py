"""The digit CNN (P3's classifier, P1's optional candidate selector): conv features and a linear label head.

``DigitClassifier(config)(x) -> (logits, features)``: ``x`` is RGB (B, 3, 28, 28) in [−1, 1]
(grayscale sources are replicated to 3 channels on loading). Input handling is part of the model,
so training and ``hw2_3.sh`` can never disagree about it:

* ``grayscale``  : average the channels (colour says nothing about the digit, and USPS has none);
* ``standardize``: per-image zero mean / unit variance (instance normalisation of the input),
  which removes most of the brightness and contrast gap between domains.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .checkpoints import load_checkpoint, load_weights
from .cli import UserError
from .images import map_batches, uint8_to_signed


@dataclass
class ClassifierConfig:
    grayscale: bool = False  # average RGB to one channel before the CNN
    standardize: bool = False  # per-image mean/std normalisation of the input
    width: int = 32  # channels of the first conv stage (×2, ×4 after each pooling)
    feature_dim: int = 256  # size of the features fed to the label and domain heads
    dropout: float = 0.3  # before the label head
    num_classes: int = 10

    def to_dict(self) -> dict:
        return asdict(self)


def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class DigitClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        w, c_in = config.width, 1 if config.grayscale else 3
        self.features = nn.Sequential(
            *conv_bn(c_in, w),
            nn.MaxPool2d(2),  # 28 → 14
            *conv_bn(w, 2 * w),
            nn.MaxPool2d(2),  # 14 → 7
            *conv_bn(2 * w, 4 * w),
            nn.MaxPool2d(2),  # 7 → 3
            nn.Flatten(),
            nn.Linear(4 * w * 9, config.feature_dim),
            nn.BatchNorm1d(config.feature_dim),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[−1, 1] RGB (B, 3, H, W) → the network's input (grayscale and/or standardised)."""
        if self.config.grayscale:
            x = x.mean(dim=1, keepdim=True)
        if self.config.standardize:
            flat = x.flatten(1)
            x = (x - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-3)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(self.prepare(x))
        return self.head(features), features


def load_digit_classifier(path: str | os.PathLike, device: torch.device) -> DigitClassifier:
    """Rebuild a :class:`DigitClassifier` from a checkpoint's stored config and weights, in eval mode."""
    ckpt = load_checkpoint(path, required=("model", "config"))
    try:
        model = DigitClassifier(ClassifierConfig(**ckpt["config"]))
    except TypeError as err:
        raise UserError(f"{path}: checkpoint config does not describe a digit classifier ({err})") from None
    return load_weights(model, ckpt["model"], str(path)).to(device).eval()


@torch.no_grad()
def penultimate_features(model: DigitClassifier, images: torch.Tensor, batch_size: int = 512):
    """(softmax probabilities (N, K), penultimate features (N, D)) on the CPU for uint8 RGB images
    (N, 3, 28, 28), in eval mode: what the Fréchet distance, the t-SNE plots and SHOT's centroid
    labels are computed from."""
    model.eval()
    k = model.config.num_classes
    out = map_batches(lambda x: torch.cat(model(x), dim=1), images, batch_size, next(model.parameters()).device)
    return out[:, :k].softmax(1), out[:, k:]


@torch.no_grad()
def predict_labels(model: DigitClassifier, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted digits (N,) on the CPU for uint8 RGB images (N, 3, 28, 28), in eval mode."""
    model.eval()
    return map_batches(lambda x: model(x)[0].argmax(1), images, batch_size, next(model.parameters()).device)


def batch_statistics_mode(model: nn.Module) -> nn.Module:
    """BatchNorm normalises with each batch's own statistics (and, where it tracks them, accumulates them
    into its running buffers: what :func:`adapt_batchnorm` wants), dropout is off."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model`` is in :func:`batch_statistics_mode` with no BatchNorm tracking its
    running statistics: each batch is normalised with its own statistics (the same numbers as
    ``batch_statistics_mode``) and no buffer is read or written. Afterwards every module's train/eval
    flag and ``track_running_stats`` are as they were, so the model leaves exactly as it came (how the
    mean teacher labels a target batch without its labelling changing it)."""
    modes = [(m, m.training) for m in model.modules()]
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracked = [m.track_running_stats for m in norms]
    try:
        batch_statistics_mode(model)
        for m in norms:
            m.track_running_stats = False  # train mode without tracking: batch statistics, buffers untouched
        yield model
    finally:
        for m, flag in zip(norms, tracked):
            m.track_running_stats = flag
        for m, training in modes:
            m.training = training


@torch.no_grad()
def adapt_batchnorm(model: DigitClassifier, images: torch.Tensor, batch_size: int = 256) -> DigitClassifier:
    """A copy of ``model`` in eval mode whose BatchNorm statistics are re-estimated on uint8 ``images`` (AdaBN).

    The statistics are the plain average over batches of ``batch_size`` images, in order, so the
    result depends only on the images, not on what the model saw before.
    """
    adapted = copy.deepcopy(model)
    for m in adapted.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
    batch_statistics_mode(adapted)
    device = next(model.parameters()).device
    for chunk in images.split(batch_size):
        adapted(uint8_to_signed(chunk).to(device))
    return adapted.eval()


def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of uint8 ``images`` (N, 3, 28, 28) whose predicted digit equals ``labels`` (N,)."""
    return (predict_labels(model, images) == labels).float().mean().item()
