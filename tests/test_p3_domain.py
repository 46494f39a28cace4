"""P3: hw2_3.sh on any folder. The path tells the domain when it names exactly one; otherwise the
images do (all grayscale: usps, all colour: svhn), and a mix is one error line with nothing written."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, assert_user_error, make_digit_dataset, run_script
from hw2lib.cli import UserError
from hw2lib.digits import read_images
from p3.table import domain_of, domain_of_images, is_grayscale, tell_domain

NEUTRAL = "the path names neither svhn nor usps"


def grey_pixels(seed: int) -> np.ndarray:
    """uint8 (28, 28): a random grey level per pixel."""
    return np.random.default_rng(seed).integers(0, 256, size=(28, 28), dtype=np.uint8)


def save_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


# ---------------------------------------------------------------- the grey rule, in this process


def test_grey_means_equal_channels_at_every_pixel(tmp_path):
    grey = grey_pixels(0)
    rgb_grey = np.repeat(grey[:, :, None], 3, axis=2)  # a colour file that stores grey
    one_pixel = rgb_grey.copy()
    one_pixel[13, 7, 2] ^= 1  # blue off by one at one pixel
    files = [
        save_png(tmp_path / "a_mode_l.png", grey),
        save_png(tmp_path / "b_rgb_grey.png", rgb_grey),
        save_png(tmp_path / "c_one_pixel.png", one_pixel),
    ]
    assert Image.open(files[0]).mode == "L" and Image.open(files[1]).mode == "RGB"
    assert is_grayscale(read_images(files)).tolist() == [True, True, False]


def test_grey_rule_on_tensors():
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8).expand(4, 3, 28, 28).clone()
    images[2, 0, 27, 27] = images[2, 1, 27, 27] ^ 255  # red differs from green at the last pixel
    assert is_grayscale(images).tolist() == [True, True, False, True]
    assert is_grayscale(torch.zeros(0, 3, 28, 28, dtype=torch.uint8)).shape == (0,)


def test_domain_of_images_all_grey_all_colour_or_an_error():
    grey = torch.full((3, 3, 28, 28), 77, dtype=torch.uint8)
    colour = grey.clone()
    colour[:, 0] = 200
    names = ["x.png", "y.png", "z.png"]
    assert domain_of_images(grey, names) == ("usps", "all 3 images are grayscale")
    assert domain_of_images(colour, names) == ("svhn", "all 3 images are colour")
    mixed = torch.cat([colour[:1], grey[:2]])
    with pytest.raises(
        UserError, match=r"3 images are a mix: 2 grayscale \(e\.g\. y\.png\) and 1 colour \(e\.g\. x\.png\)"
    ):
        domain_of_images(mixed, names)


def test_the_path_decides_when_it_names_exactly_one_domain():
    grey = torch.full((2, 3, 28, 28), 5, dtype=torch.uint8)
    colour = grey.clone()
    colour[:, 2] = 9
    names = ["0.png", "1.png"]
    assert tell_domain("/data/svhn/test", grey, names) == ("svhn", "the path names svhn")  # the path wins
    assert tell_domain("/data/USPS/test", colour, names) == ("usps", "the path names usps")
    assert tell_domain("/tmp/grading/images", colour, names) == ("svhn", f"{NEUTRAL}; all 2 images are colour")
    both = ("usps", "the path names both svhn and usps; all 2 images are grayscale")
    assert tell_domain("/data/svhn_vs_usps/x", grey, names) == both
    with pytest.raises(UserError, match=f"^/tmp/grading/images: {NEUTRAL}, and its 2 images are a mix"):
        tell_domain("/tmp/grading/images", torch.cat([grey[:1], colour[:1]]), names)


# ---------------------------------------------------------------- hw2_3.sh, end to end


def shipped(domain: str) -> None:
    if not (REPO / "p3" / "checkpoints" / f"{domain}_dann-plus.pt").exists():
        pytest.skip("shipped checkpoint missing: run bash hw2_download.sh")


def neutral_folder(path: Path) -> Path:
    """``path``, checked to name neither domain in any form (else the test would prove nothing)."""
    with pytest.raises(UserError, match="neither"):
        domain_of(path)
    return path


def domain_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("p3:")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, domain, kind", [("L", "usps", "grayscale"), ("RGB", "svhn", "colour")], ids=["grey", "colour"]
)
def test_a_folder_named_neither_is_labelled_as_its_named_copy(tmp_path, mode, domain, kind):
    shipped(domain)
    named = make_digit_dataset(tmp_path / domain, n=25, seed=4, mode=mode, splits=("test",)) / "data"
    images = neutral_folder(tmp_path / "a" / "images")
    shutil.copytree(named, images)
    by_path = run_script("hw2_3.sh", named, tmp_path / "named.csv")
    by_images = run_script("hw2_3.sh", images, tmp_path / "neutral.csv")
    assert by_path.returncode == 0 and by_images.returncode == 0, by_path.stderr + by_images.stderr
    assert domain_lines(by_path.stderr) == [f"p3: {domain} (the path names {domain})"]
    assert domain_lines(by_images.stderr) == [f"p3: {domain} ({NEUTRAL}; all 25 images are {kind})"]
    assert by_images.stdout == f"{domain}: wrote 25 predictions to {tmp_path / 'neutral.csv'}\n"
    rows = (tmp_path / "neutral.csv").read_text().splitlines()
    assert len(rows) == 26 and rows == (tmp_path / "named.csv").read_text().splitlines()


@pytest.mark.slow
def test_a_mixed_folder_is_one_error_and_writes_nothing(tmp_path):
    shipped("usps")
    folder = make_digit_dataset(tmp_path / "a", n=6, seed=5, mode="L", splits=("test",)) / "data"
    colour = np.repeat(grey_pixels(6)[:, :, None], 3, axis=2)
    colour[0, 0] = (255, 0, 0)
    save_png(neutral_folder(folder) / "zz.png", colour)
    results = tmp_path / "results"
    results.mkdir()
    result = run_script("hw2_3.sh", folder, results / "pred.csv")
    assert_user_error(result, str(folder), NEUTRAL, "mix: 6 grayscale (e.g. 00000.png) and 1 colour (e.g. zz.png)")
    assert os.listdir(results) == [], "no CSV and no temporary file may be left"


@pytest.mark.slow
def test_a_path_naming_both_is_told_by_its_grey_images(tmp_path):
    shipped("usps")
    named = make_digit_dataset(tmp_path / "usps", n=10, seed=7, mode="L", splits=("test",)) / "data"
    both = tmp_path / "svhn_vs_usps" / "x"
    shutil.copytree(named, both)
    by_path = run_script("hw2_3.sh", named, tmp_path / "named.csv")
    by_images = run_script("hw2_3.sh", both, tmp_path / "both.csv")
    assert by_path.returncode == 0 and by_images.returncode == 0, by_path.stderr + by_images.stderr
    line = "p3: usps (the path names both svhn and usps; all 10 images are grayscale)"
    assert domain_lines(by_images.stderr) == [line]
    assert (tmp_path / "both.csv").read_bytes() == (tmp_path / "named.csv").read_bytes()
