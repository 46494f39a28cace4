"""P2: the face UNet against the course's manifest and golden forward pass; hw2_2.sh end to end."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from golden_unet import golden_unet
from golden_unet import tame_unet as make_tame_unet
from PIL import Image

from conftest import assert_user_error, course_ddim_scheduler, run_script, shared_file
from hw2lib.checkpoints import check_state_dict
from hw2lib.cli import UserError
from p2.unet import UNet

SIZE = 64  # the smallest side the UNet's five down-samplings and 16×16-attention layout allow cheaply


@pytest.fixture(scope="module")
def unet() -> UNet:
    return golden_unet()


@pytest.fixture(scope="module")
def tame_unet() -> UNet:
    return make_tame_unet()


@pytest.fixture(scope="module")
def unet_file(tame_unet, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("unet") / "UNet.pt"
    torch.save(tame_unet.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("noise")
    gen = torch.Generator().manual_seed(2023)
    for name in ("01", "00"):  # written out of order on purpose
        torch.save(torch.randn(1, 3, SIZE, SIZE, generator=gen), folder / f"{name}.pt")
    return folder


def test_state_dict_matches_course_manifest():
    manifest = shared_file("p2", "unet_state_dict_manifest.tsv")
    with open(manifest) as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    state = UNet().state_dict()
    assert [r["key"] for r in rows] == list(state), "keys or their order differ from the course's UNet.pt"
    for r in rows:
        tensor = state[r["key"]]
        assert "x".join(map(str, tensor.shape)) == r["shape"], r["key"]
        assert str(tensor.dtype).replace("torch.", "") == r["dtype"], r["key"]
    assert len(state) == 427
    assert sum(p.numel() for p in UNet().parameters()) == 113_673_219


def test_forward_matches_course_golden(unet):
    golden = torch.load(shared_file("p2", "unet_forward_golden.pt"), weights_only=True)
    with torch.no_grad():
        eps = unet(golden["x"], golden["t"])
    torch.testing.assert_close(eps, golden["eps"], rtol=0, atol=1e-4)


def test_unet_rejects_sizes_that_are_not_multiples_of_32(unet):
    with pytest.raises(ValueError, match="multiples of 32"):
        unet(torch.zeros(1, 3, 48, 48), torch.tensor([1]))


def test_state_dict_check_names_bad_keys(unet):
    state = dict(unet.state_dict())
    state.pop("down2.resblocks.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    state["out.2.bias"] = torch.zeros(4)
    with pytest.raises(UserError) as err:
        check_state_dict(UNet(), state, "UNet.pt")
    message = str(err.value)
    assert "1 missing key(s): down2.resblocks.conv1.weight" in message
    assert "1 unexpected key(s): extra.weight" in message
    assert "1 mis-shaped key(s): out.2.bias (4,) vs (3,)" in message


def diffusers_reference(unet: UNet, noises: list[torch.Tensor]) -> list[np.ndarray]:
    """An independent DDIM: diffusers' scheduler configured as the course's procedure, then save_image's rounding."""
    scheduler = course_ddim_scheduler()
    x = torch.cat(noises)
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t.repeat(len(x))), t, x, eta=0.0).prev_sample
    out = []
    for img in x:
        img = (img - img.min()) / (img.max() - img.min())
        out.append(img.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
    return out


@pytest.mark.slow
def test_hw2_2_matches_independent_reference(tame_unet, unet_file, noise_dir, tmp_path):
    out_dir = tmp_path / "out"
    result = run_script("hw2_2.sh", noise_dir, out_dir, unet_file)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["00.png", "01.png"]
    noises = [torch.load(noise_dir / f"{n}.pt") for n in ("00", "01")]
    reference = diffusers_reference(tame_unet, noises)
    for name, ref in zip(("00", "01"), reference):
        with Image.open(out_dir / f"{name}.png") as image:
            assert image.mode == "RGB" and image.size == (SIZE, SIZE)
            ours = np.asarray(image).astype(np.float64)
        mse = np.mean((ours - ref.astype(np.float64)) ** 2)
        assert mse < 0.05, f"{name}: MSE {mse} against the diffusers reference"
        assert ours.min() == 0 and ours.max() == 255  # min–max normalised per image


# ---------- bad input: one clear line, non-zero exit, nothing written ----------


@pytest.mark.slow
def test_missing_noise_dir(unet_file, tmp_path):
    result = run_script("hw2_2.sh", tmp_path / "nope", tmp_path / "out", unet_file)
    assert_user_error(result, str(tmp_path / "nope"), "no such directory")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_empty_noise_dir(unet_file, tmp_path):
    (tmp_path / "noise").mkdir()
    (tmp_path / "noise" / "readme.txt").write_text("not a noise")
    result = run_script("hw2_2.sh", tmp_path / "noise", tmp_path / "out", unet_file)
    assert_user_error(result, "no noise tensors")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "content, expected",
    [
        ({"noise": torch.zeros(1)}, "expected a tensor, found dict"),
        (torch.zeros(1, 3, 64, 60), "got (1, 3, 64, 60)"),
        (torch.zeros(1, 1, 64, 64), "got (1, 1, 64, 64)"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.long), "torch.int64"),
        (b"garbage", "not a loadable noise tensor"),
    ],
)
def test_bad_noise_file(unet_file, noise_dir, tmp_path, content, expected):
    folder = tmp_path / "noise"
    folder.mkdir()
    (folder / "00.pt").write_bytes((noise_dir / "00.pt").read_bytes())
    if isinstance(content, bytes):
        (folder / "01.pt").write_bytes(content)
    else:
        torch.save(content, folder / "01.pt")
    result = run_script("hw2_2.sh", folder, tmp_path / "out", unet_file)
    assert_user_error(result, str(folder / "01.pt"), expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_missing_unet(noise_dir, tmp_path):
    result = run_script("hw2_2.sh", noise_dir, tmp_path / "out", tmp_path / "UNet.pt")
    assert_user_error(result, str(tmp_path / "UNet.pt"), "no such file")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_unet_with_wrong_keys(noise_dir, tmp_path):
    bad = tmp_path / "UNet.pt"
    torch.save({"time.1.weight": torch.zeros(512, 64), "foo": torch.zeros(1)}, bad)
    result = run_script("hw2_2.sh", noise_dir, tmp_path / "out", bad)
    assert_user_error(result, str(bad), "missing key(s)", "unexpected key(s): foo", "mis-shaped key(s): time.1.weight")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_unet_that_is_not_a_checkpoint(noise_dir, tmp_path):
    bad = tmp_path / "UNet.pt"
    bad.write_text("hello")
    result = run_script("hw2_2.sh", noise_dir, tmp_path / "out", bad)
    assert_user_error(result, str(bad), "not a loadable")


@pytest.mark.slow
def test_output_path_is_a_file(unet_file, noise_dir, tmp_path):
    target = tmp_path / "out"
    target.write_text("keep me")
    result = run_script("hw2_2.sh", noise_dir, target, unet_file)
    assert_user_error(result, str(target), "not a directory")
    assert target.read_text() == "keep me"


@pytest.mark.slow
def test_wrong_argument_count():
    result = run_script("hw2_2.sh", "only-one")
    assert result.returncode == 2 and "usage: bash hw2_2.sh NOISE_DIR OUT_DIR UNET_PT" in result.stderr
