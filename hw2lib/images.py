"""Image I/O at the edges: files ↔ uint8, [−1, 1] / [0, 1] tensors ↔ uint8, and atomic writes.

Conventions: model space is float [−1, 1] (P1, P3) or arbitrary floats normalised per image (P2);
files are 8-bit RGB PNGs. The float → uint8 rounding is ``torchvision.utils.save_image``'s
(×255, +0.5, clamp to [0, 255], truncate), so our files match the course's byte for byte.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .cli import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def unit_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats (..., C, H, W) → uint8 (..., H, W, C), rounding as ``save_image`` does."""
    x = x.detach().to("cpu", torch.float32)
    return x.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).movedim(-3, -1)


def signed_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[−1, 1] floats (..., C, H, W) → uint8 (..., H, W, C)."""
    return unit_to_uint8((x.detach().float() + 1) / 2)


def minmax_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Per-image min–max normalisation over all C×H×W values, then uint8 (B, H, W, C).

    Matches ``save_image(img, normalize=True)`` applied to one image at a time, including its
    1e-5 floor on the range.
    """
    x = x.detach().to("cpu", torch.float32)
    flat = x.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return unit_to_uint8((x - low) / (high - low).clamp(min=1e-5))


def encode_png(pixels: torch.Tensor | np.ndarray) -> bytes:
    """uint8 (H, W, 3) → PNG bytes."""
    array = pixels.numpy() if isinstance(pixels, torch.Tensor) else pixels
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array), mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def read_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read any image file as uint8 RGB (H, W, 3); grayscale/RGBA/palette are converted.

    With ``size=(H, W)`` the image is resized (bilinear) when it differs. Raises a
    :class:`UserError` naming the file when it is not a readable image.
    """
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UserError(f"{path}: not a readable image ({err.__class__.__name__}: {err})") from None


def list_images(folder: str | os.PathLike, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; a missing or empty folder is a UserError."""
    return list_files(folder, suffixes, "image files")


def list_files(folder: str | os.PathLike, suffixes: Iterable[str], what: str) -> list[Path]:
    """Files in ``folder`` whose suffix (case-insensitive) is in ``suffixes``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such directory (expected a folder of {what})")
    wanted = tuple(s.lower() for s in suffixes)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in wanted)
    if not files:
        raise UserError(f"{folder}: no {what} ({'/'.join(wanted)}) in this folder")
    return files


def check_output_dir(out_dir: str | os.PathLike) -> Path:
    """Validate (without creating) an output folder: it may exist as a folder or not exist yet."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory (expected an output folder)")
    return out_dir


def write_files_atomically(out_dir: str | os.PathLike, files: Mapping[str, bytes]) -> None:
    """Write ``{name: bytes}`` into ``out_dir`` so that no file is ever seen half-written.

    Everything is first staged in a temporary folder beside ``out_dir`` (same filesystem), then
    each file is moved into place with ``os.replace``. A failure while staging leaves ``out_dir``
    untouched.
    """
    out_dir = check_output_dir(out_dir)
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=parent))
    except OSError as err:
        raise UserError(f"{out_dir}: cannot write here ({err.strerror})") from None
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in files:
            os.replace(staging / name, out_dir / name)
    except OSError as err:
        raise UserError(f"{out_dir}: cannot write output ({err.strerror})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write a text file via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory (expected a file path to write)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as err:
        raise UserError(f"{path}: cannot write here ({err.strerror})") from None
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as err:
        raise UserError(f"{path}: cannot write output ({err.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int, pad: int = 2) -> None:
    """Save uint8 images (N, H, W, 3) as one grid PNG with ``nrow`` images per row."""
    n, h, w, _ = images.shape
    rows = (n + nrow - 1) // nrow
    canvas = torch.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = images[i]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(encode_png(canvas))
