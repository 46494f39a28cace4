"""Image I/O at the edges: files ↔ uint8, [−1, 1] / [0, 1] tensors ↔ uint8.

Conventions: model space is float [−1, 1] (P1, P3) or arbitrary floats normalised per image (P2);
files are 8-bit RGB PNGs. The float → uint8 rounding is ``torchvision.utils.save_image``'s
(×255, +0.5, clamp to [0, 255], truncate), so our files match the course's byte for byte.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image

from .cli import UserError
from .files import list_files

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 100_000_000  # larger images are refused before decoding (a 28×28 digit task never needs them)

# Pillow's warnings (corrupt EXIF, decompression-bomb sizes below our own limit, …) are noise to a
# user: an unreadable image is an error line of ours, an odd but readable one is read. The filter is
# installed once, process-wide, because ``warnings.catch_warnings`` is not thread-safe and images
# are decoded in threads.
warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def unit_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats (..., C, H, W) → uint8 (..., H, W, C), rounding as ``save_image`` does."""
    x = x.detach().to("cpu", torch.float32)
    return x.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).movedim(-3, -1)


def uint8_to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] (any layout) → float [−1, 1] (the same as ToTensor + Normalize(0.5, 0.5))."""
    return images.float().div(127.5).sub(1.0)


@torch.no_grad()
def map_batches(
    fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 512, device=None
) -> torch.Tensor:
    """``fn`` applied to uint8 images (N, C, H, W) as [−1, 1] float batches on ``device``; the
    results are concatenated on the CPU. Every batched inference loop of the project is this one."""
    return torch.cat([fn(uint8_to_signed(chunk).to(device)).cpu() for chunk in images.split(batch_size)])


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
    """Read any image file as uint8 RGB (H, W, 3).

    Grayscale, RGBA, palette and CMYK images are converted; 16- and 32-bit integer grayscale
    (modes ``I;16*`` and ``I``, e.g. 16-bit PNGs) is scaled from 0–65535 to 0–255 rather than
    clipped. With ``size=(H, W)`` the image is resized (bilinear) when it differs. Raises a
    :class:`UserError` naming the file when it is not a readable image or has more than
    :data:`MAX_PIXELS` pixels.
    """
    try:
        image = Image.open(path)
        with image:
            if image.width * image.height > MAX_PIXELS:
                raise UserError(
                    f"{path}: {image.width}×{image.height} pixels is more than the {MAX_PIXELS:,} this reads"
                )
            image = to_rgb(image)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise UserError(f"{path}: more than {MAX_PIXELS:,} pixels, which is more than this reads") from None
    except UserError:
        raise
    except Exception as err:  # Pillow's decoders raise almost anything on bad data (AttributeError, …)
        raise UserError(f"{path}: not a readable image ({err.__class__.__name__}: {err})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of ``image``; high-bit-depth grayscale is scaled down, not clipped."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        values = np.asarray(image).astype(np.float64)
        image = Image.fromarray(np.clip(values * (255.0 / 65535.0) + 0.5, 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def list_images(folder: str | os.PathLike, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; a missing or empty folder is a UserError."""
    return list_files(folder, suffixes, "image files")


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
