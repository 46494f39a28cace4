"""Images, noises and models that are not what they say: one ``error:`` line each; the image
conversions pinned."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_outputs import tiny_p3_checkpoint

from conftest import REPO, assert_user_error, run_module
from hw2lib.cli import UserError, run_main
from hw2lib.images import minmax_to_uint8, read_rgb, unit_to_uint8


@pytest.fixture(scope="module")
def p3_ckpt(tmp_path_factory) -> Path:
    return tiny_p3_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


# ---------------------------------------------------------------- images that are not what they say


def truncated_eps(path: Path) -> None:
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n")


def fuzzed_dds(path: Path) -> None:
    header = bytearray(128)
    header[:4] = b"DDS "
    header[4:8] = (124).to_bytes(4, "little")
    header[12:16] = (28).to_bytes(4, "little")
    header[16:20] = (28).to_bytes(4, "little")
    header[76:80] = (32).to_bytes(4, "little")
    header[80:84] = (0x4).to_bytes(4, "little")  # DDPF_FOURCC
    header[84:88] = b"ZZZZ"  # a compression Pillow does not know
    path.write_bytes(bytes(header) + b"\0" * 64)


def exif_corrupt_jpeg(path: Path) -> None:
    Image.new("RGB", (28, 28), (200, 10, 10)).save(path, format="JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\xff")


@pytest.mark.parametrize("make", [truncated_eps, fuzzed_dds])
def test_exotic_or_broken_files_named_png_are_one_error_line(tmp_path, make, p3_ckpt):
    folder = tmp_path / "usps"
    folder.mkdir()
    make(folder / "bad.png")
    result = run_module("p3.predict", folder, tmp_path / "o.csv", "--checkpoint", p3_ckpt)
    assert_user_error(result, "bad.png", "not a readable image")
    assert not (tmp_path / "o.csv").exists()


def test_corrupt_exif_prints_no_warning(tmp_path, p3_ckpt):
    folder = tmp_path / "usps"
    folder.mkdir()
    exif_corrupt_jpeg(folder / "a.jpg")
    result = run_module("p3.predict", folder, tmp_path / "o.csv", "--checkpoint", p3_ckpt)
    assert result.returncode == 0 and "Warning" not in result.stderr, result.stderr


def test_large_images_read_in_threads_print_no_warning(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    Image.new("L", (9500, 9500)).save(folder / "0.png")  # above Pillow's warning size, below our limit
    for i in range(1, 8):
        (folder / f"{i}.png").write_bytes((folder / "0.png").read_bytes())
    code = "import sys; from hw2lib.digits import read_images; from pathlib import Path; "
    code += f"print(read_images(sorted(Path({str(folder)!r}).iterdir())).shape)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "torch.Size([8, 3, 28, 28])" in result.stdout


# ---------------------------------------------------------------- noises that are not noises


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("sparse", "dense"),
        ("huge_stride0", "more than"),
    ],
)
def test_noises_that_are_not_dense_or_too_large(tmp_path, case, fragment):
    folder = tmp_path / "noise"
    folder.mkdir()
    if case == "sparse":
        tensor = torch.zeros(1, 3, 32, 32).to_sparse()
    else:
        tensor = torch.zeros(1, 3, 1, 1).expand(1, 3, 16384, 16384)  # a few bytes on disk, 3·2²⁸ values
    torch.save(tensor, folder / "00.pt")
    unet = tmp_path / "UNet.pt"
    unet.write_bytes(b"never loaded: the noises are checked first")
    result = run_module("p2.sample", folder, tmp_path / "out", unet)
    assert_user_error(result, "00.pt", fragment)
    assert not (tmp_path / "out").exists()


def test_meta_noise_is_refused(monkeypatch, tmp_path):
    from p2 import sample

    monkeypatch.setattr(sample, "load_file", lambda path, what: torch.empty(1, 3, 32, 32, device="meta"))
    with pytest.raises(UserError, match="dense tensor"):
        sample.load_noise(tmp_path / "00.pt")


def test_a_model_that_returns_nan_is_an_error_not_a_black_image(tmp_path):
    from hw2lib.ddim import course_sampler, ddim_images

    def nan_eps(x, t):
        return torch.full_like(x, float("nan"))

    with pytest.raises(UserError, match="NaN or infinite"):
        ddim_images(nan_eps, torch.randn(1, 3, 32, 32), course_sampler(steps=2), 1, torch.device("cpu"))


# ---------------------------------------------------------------- the image conversions, pinned


def test_unit_to_uint8_rounds_like_save_image():
    # ×255, +0.5, clamp, truncate: 0.5/255 → 1 (round half up), 0.4999/255 → 0, out of range clamps
    x = torch.tensor([0.0, 0.5 / 255, 0.4999 / 255, 1.5 / 255, 254.5 / 255, 1.0, -0.2, 1.3]).view(1, 8, 1)
    x = x.expand(3, 8, 1)
    assert unit_to_uint8(x)[:, 0, 0].tolist() == [0, 1, 0, 2, 255, 255, 0, 255]


def test_minmax_is_per_image_over_all_channels():
    a = torch.stack([torch.full((2, 2), v) for v in (-3.0, 0.0, 1.0)])  # one image: min −3, max 1
    b = torch.stack([torch.full((2, 2), v) for v in (10.0, 20.0, 30.0)])  # another: its own range
    out = minmax_to_uint8(torch.stack([a, b]))
    assert out.shape == (2, 2, 2, 3)
    assert out[0, 0, 0].tolist() == [0, 191, 255]  # (0 − (−3))/4 · 255 + 0.5 = 191.75 → 191
    assert out[1, 0, 0].tolist() == [0, 128, 255]  # 0.5 · 255 + 0.5 = 128
    flat = minmax_to_uint8(torch.zeros(1, 3, 2, 2))  # a constant image: no division by zero
    assert flat.unique().tolist() == [0]


def test_reading_is_the_inverse_of_writing(tmp_path):
    pixels = np.arange(28 * 28 * 3, dtype=np.uint8).reshape(28, 28, 3)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    assert np.array_equal(read_rgb(tmp_path / "a.png"), pixels)


def test_run_main_turns_an_unforeseen_os_error_into_one_line(capsys):
    def main(argv):
        raise OSError(errno.ELOOP, "Too many levels of symbolic links", "/x/loop")

    with pytest.raises(SystemExit) as stop:
        run_main(main)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: /x/loop: Too many levels of symbolic links\n"


@pytest.mark.parametrize(
    "module, flags, named",
    [
        ("p1.train", ("--data-root", "X", "--eval-every", "0"), "--eval-every must be ≥ 1 (got 0)"),
        ("p1.train", ("--data-root", "X", "--stop-after", "-3"), "--stop-after must be ≥ 1 (got -3)"),
        ("p3.train", ("--source", "X", "--target", "X", "--steps", "0"), "--steps must be ≥ 1 (got 0)"),
        ("p3.refine", ("--init-from", "X", "--target", "X", "--relabel-every", "0"), "--relabel-every must be ≥ 1"),
    ],
)
def test_trainers_refuse_step_counts_below_one_before_writing_anything(tmp_path, module, flags, named):
    """``step % 0`` would end a run with a traceback, a negative --stop-after would stop at once."""
    flags = [str(tmp_path / "data") if f == "X" else f for f in flags]
    assert_user_error(run_module(module, *flags, "--out-dir", tmp_path / "run"), named)
    assert list(tmp_path.iterdir()) == []
