"""The grader's P1 digit classifier layout (a LeNet), and accuracy of generated digits.

Input: RGB 28×28 uint8, scaled as ``ToTensor`` then ``Normalize(0.5, 0.5)``, i.e. to [−1, 1].
The weights are the course's ``Classifier.pth`` (``{"state_dict": …}``), never shipped here.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from hw2lib.checkpoints import load_file, load_weights
from hw2lib.cli import UserError
from hw2lib.images import map_batches


class LeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(256, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc3(F.relu(self.fc2(x)))


def load_lenet(path: str | os.PathLike) -> LeNet:
    """The grader's LeNet from ``Classifier.pth`` (a dict with ``state_dict``), in eval mode on the CPU."""
    ckpt = load_file(path, "classifier checkpoint")
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if state is None:
        raise UserError(f"{path}: expected a dict with a 'state_dict' of the grader's LeNet")
    return load_weights(LeNet(), state, str(path)).eval()


@torch.no_grad()
def predict(classifier: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted digits (N,) for uint8 images (N, 3, 28, 28)."""
    return map_batches(lambda x: classifier(x).argmax(1), images, batch_size)


def per_digit_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> dict[int, float]:
    """Accuracy per true digit, over the digits that occur in ``labels``."""
    return {int(d): (preds[labels == d] == d).float().mean().item() for d in labels.unique()}
