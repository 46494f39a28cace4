"""P1 model growth: a deepened UNet computes what the checkpoint did, and training goes on from it."""

from pathlib import Path

import pytest
import torch

from conftest import assert_user_error, make_digit_dataset, run_module
from hw2lib.checkpoints import save_checkpoint
from hw2lib.cli import UserError
from hw2lib.schedule import NoiseSchedule
from hw2lib.training import init_from
from p1.grow import deepen
from p1.model import ConditionalUNet, UNetConfig
from p1.sampling import load_model
from p1.train import canonical_config, inference_checkpoint

SMALL = UNetConfig(channels=(16, 32))  # p1.train --channels 16 32 builds this one


def trained_like(config: UNetConfig, seed: int = 0) -> ConditionalUNet:
    """A model whose zero-initialised layers are not zero (as after training)."""
    torch.manual_seed(seed)
    model = ConditionalUNet(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def inputs(n: int = 6):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, 3, 28, 28, generator=gen)
    t = torch.randint(0, 1000, (n,), generator=gen)
    y = torch.tensor([0, 3, 9, 10, 10, 5])[:n]  # 10: the "no class" label
    return x, t, y


def test_mid_blocks_default_keeps_the_released_layout():
    model = ConditionalUNet(UNetConfig())
    assert [type(b.attn).__name__ for b in model.mid] == ["SelfAttention", "Identity"]
    four = ConditionalUNet(UNetConfig(mid_blocks=4))
    assert [type(b.attn).__name__ for b in four.mid] == ["SelfAttention", "Identity", "SelfAttention", "Identity"]
    assert set(model.state_dict()) < set(four.state_dict())
    assert {k.split(".")[1] for k in set(four.state_dict()) - set(model.state_dict())} == {"2", "3"}


@pytest.mark.parametrize("mid_blocks", [2, 3, 4])
def test_deepened_model_predicts_exactly_what_the_source_did(mid_blocks):
    source = trained_like(SMALL)
    deeper = deepen(source, mid_blocks, seed=1).eval()
    assert deeper.config == UNetConfig(channels=(16, 32), mid_blocks=mid_blocks) and len(deeper.mid) == mid_blocks
    for name, tensor in source.state_dict().items():
        assert torch.equal(deeper.state_dict()[name], tensor), name
    with torch.no_grad():
        assert torch.equal(deeper(*inputs()), source(*inputs()))
        if mid_blocks > 2:  # the new blocks are not inert: perturbing one changes the prediction
            deeper.mid[2].res.conv2.weight.add_(0.1)
            assert not torch.allclose(deeper(*inputs()), source(*inputs()))


def test_deepen_is_seeded_and_leaves_the_global_generator_alone():
    source = trained_like(SMALL)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = deepen(source, 4, seed=7)
    assert torch.equal(torch.rand(1), before)
    b, c = deepen(source, 4, seed=7), deepen(source, 4, seed=8)
    key = "mid.2.res.conv1.weight"
    assert torch.equal(a.state_dict()[key], b.state_dict()[key])
    assert not torch.equal(a.state_dict()[key], c.state_dict()[key])


def test_deepen_refuses_to_drop_blocks():
    with pytest.raises(UserError, match="fewer than the model's 4"):
        deepen(ConditionalUNet(UNetConfig(channels=(16, 32), mid_blocks=4)), 2)


def test_checkpoints_from_before_mid_blocks_read_as_two(tmp_path):
    old = inference_checkpoint(trained_like(SMALL), NoiseSchedule(), step=5)
    del old["config"]["mid_blocks"]  # what every release up to stage 9 stored
    save_checkpoint(old, tmp_path / "old.pt")
    assert canonical_config(old["config"]) == SMALL.to_dict()
    model = ConditionalUNet(SMALL)
    init_from(model, tmp_path / "old.pt", SMALL.to_dict(), canonical=canonical_config)
    with pytest.raises(UserError, match="another configuration"):
        init_from(model, tmp_path / "old.pt", SMALL.to_dict())  # without the canonical form they differ
    loaded, _ = load_model(tmp_path / "old.pt", torch.device("cpu"))
    assert loaded.config == SMALL


@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("grow") / "source.pt"
    save_checkpoint(inference_checkpoint(trained_like(SMALL), NoiseSchedule(), step=42), path)
    return path


def test_grow_cli_writes_a_checkpoint_that_samples_and_trains_on(source_checkpoint, tmp_path):
    usage = run_module("p1.grow", "--help")
    assert usage.returncode == 0 and "--mid-blocks" in usage.stdout and "identity" in usage.stdout
    out = tmp_path / "grown.pt"
    result = run_module("p1.grow", source_checkpoint, out, "--mid-blocks", "4")
    assert result.returncode == 0 and "2 → 4 middle blocks" in result.stdout, result.stderr
    grown = torch.load(out, weights_only=True)
    assert grown["step"] == 42 and grown["grown_from"] == {"config": SMALL.to_dict(), "step": 42}
    assert grown["config"] == UNetConfig(channels=(16, 32), mid_blocks=4).to_dict()
    deeper, _ = load_model(out, torch.device("cpu"))
    source, _ = load_model(source_checkpoint, torch.device("cpu"))
    with torch.no_grad():
        assert torch.equal(deeper(*inputs()), source(*inputs()))

    data = make_digit_dataset(tmp_path / "mnistm", n=32, seed=0)
    common = ["--data-root", data, "--batch-size", "16", "--channels", "16", "32", "--steps", "1", "--warmup", "1"]
    trained = run_module("p1.train", *common, "--out-dir", tmp_path / "run", "--init-from", out, "--mid-blocks", "4")
    assert trained.returncode == 0, trained.stderr
    after, _ = load_model(tmp_path / "run" / "model.pt", torch.device("cpu"))
    assert after.config.mid_blocks == 4
    refused = run_module("p1.train", *common, "--out-dir", tmp_path / "run2", "--init-from", out)
    assert_user_error(refused, "another configuration")
    assert not (tmp_path / "run2" / "last.pt").exists()
    old = torch.load(source_checkpoint, weights_only=True)
    del old["config"]["mid_blocks"]  # a release from before mid_blocks existed: still a starting point
    save_checkpoint(old, tmp_path / "old.pt")
    again = run_module("p1.train", *common, "--out-dir", tmp_path / "run3", "--init-from", tmp_path / "old.pt")
    assert again.returncode == 0 and (tmp_path / "run3" / "last.pt").exists(), again.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["MISSING.pt", "OUT.pt", "--mid-blocks", "4"], "MISSING.pt"),
        (["SOURCE", "OUT.pt", "--mid-blocks", "1"], "fewer than the model's 2"),
        (["SOURCE", "/", "--mid-blocks", "4"], "is a directory"),
        (["ALIEN", "OUT.pt", "--mid-blocks", "4"], "does not describe a P1 model"),
    ],
)
def test_grow_bad_inputs_fail_in_one_line_and_write_nothing(source_checkpoint, tmp_path, args, fragment):
    alien = tmp_path / "alien.pt"  # another problem's checkpoint: a config p1 cannot build
    save_checkpoint({"model": {}, "config": {"width": 3}, "schedule": {}}, alien)
    args = [str(source_checkpoint) if a == "SOURCE" else str(alien) if a == "ALIEN" else a for a in args]
    args = [str(tmp_path / a) if a.endswith(".pt") and a != str(source_checkpoint) else a for a in args]
    assert_user_error(run_module("p1.grow", *args), fragment)
    assert not (tmp_path / "OUT.pt").exists()
