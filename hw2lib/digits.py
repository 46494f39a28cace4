"""The course's digit datasets: ``<root>/data/*.png`` plus ``<root>/{train,val}.csv`` (image_name,label).

Images are returned as uint8 tensors (N, 3, 28, 28); grayscale sources (USPS) are replicated to
three channels, other sizes are resized, so every domain has one shape.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .cli import UserError
from .images import read_rgb

IMAGE_SIZE = 28


def read_split_csv(root: str | os.PathLike, split: str) -> tuple[list[str], list[int]]:
    """``(names, labels)`` from ``<root>/<split>.csv`` with header ``image_name,label``."""
    path = Path(root) / f"{split}.csv"
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected the {split} split of a course digit dataset)")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "image_name" not in rows[0] or "label" not in rows[0]:
        raise UserError(f"{path}: expected a CSV with header image_name,label and at least one row")
    return [r["image_name"] for r in rows], [int(r["label"]) for r in rows]


def read_images(paths: list[Path], size: int = IMAGE_SIZE) -> torch.Tensor:
    """Read image files (in order) into uint8 (N, 3, size, size); threads overlap PNG decoding."""
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        arrays = list(pool.map(lambda p: read_rgb(p, (size, size)), paths))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_split(root: str | os.PathLike, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (N, 3, 28, 28) and labels long (N,) of one split; ``limit`` keeps the first N rows."""
    names, labels = read_split_csv(root, split)
    if limit is not None:
        names, labels = names[:limit], labels[:limit]
    images = read_images([Path(root) / "data" / n for n in names])
    return images, torch.tensor(labels, dtype=torch.long)
