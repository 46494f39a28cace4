"""P1 training: the min-SNR loss, resuming bit for bit, one DDP step equal to one process."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, make_digit_dataset, run_module
from hw2lib.cli import seed_everything
from hw2lib.digits import load_split
from hw2lib.images import uint8_to_signed
from hw2lib.metrics_log import read_metrics
from hw2lib.schedule import NoiseSchedule
from p1 import train as p1_train
from p1.losses import diffusion_loss, min_snr_weights, snr
from p1.sampling import (
    load_model,
)


@pytest.fixture(scope="module")
def mnistm(tmp_path_factory) -> Path:
    return make_digit_dataset(tmp_path_factory.mktemp("data") / "mnistm", n=64, seed=0)


def test_min_snr_weights_have_known_values():
    schedule = NoiseSchedule()
    t = torch.tensor([0, 999])
    a = torch.tensor(schedule.alphas_cumprod[[0, 999]], dtype=torch.float32)
    torch.testing.assert_close(snr(schedule, t), a / (1 - a))
    assert snr(schedule, t)[0].item() == pytest.approx(0.9999 / 0.0001, rel=1e-3)  # ᾱ in float32
    weights = min_snr_weights(schedule, t, gamma=5.0)
    assert weights[0].item() == pytest.approx(5.0 / 9999.0, rel=1e-3)  # SNR ≫ γ: scaled down to γ/SNR
    assert weights[1].item() == 1.0  # SNR ≈ 4e-5 < γ: full weight
    crossing = int(np.argmin(np.abs(schedule.alphas_cumprod / (1 - schedule.alphas_cumprod) - 5.0)))
    around = min_snr_weights(schedule, torch.tensor([crossing - 5, crossing + 5]), gamma=5.0)
    assert around[0] < 1.0 and around[1] == 1.0
    assert torch.equal(min_snr_weights(schedule, t, gamma=None), torch.ones(2))
    with pytest.raises(ValueError, match="positive or None"):
        min_snr_weights(schedule, t, gamma=0.0)  # would silently zero every weight


def test_diffusion_loss_is_the_weighted_mean_of_per_image_errors():
    schedule = NoiseSchedule()

    class Zero(torch.nn.Module):  # predicts ε = 0: each image's error is mean(ε²)
        null_label = 10

        def forward(self, x, t, y):
            return torch.zeros_like(x)

    x0 = torch.zeros(6, 3, 28, 28)
    y = torch.arange(6)
    plain = diffusion_loss(Zero(), schedule, x0, y, 0.0, torch.Generator().manual_seed(1), 10)
    weighted = diffusion_loss(Zero(), schedule, x0, y, 0.0, torch.Generator().manual_seed(1), 10, snr_gamma=5.0)
    gen = torch.Generator().manual_seed(1)  # the same draws, in the same order, by hand
    t = torch.randint(0, 1000, (6,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    per_image = eps.square().flatten(1).mean(1)
    torch.testing.assert_close(plain, per_image.mean())
    torch.testing.assert_close(weighted, (min_snr_weights(schedule, t, 5.0) * per_image).mean())


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data-root",
        str(data),
        "--out-dir",
        str(out),
        "--batch-size",
        "16",
        "--channels",
        "16",
        "32",
        "--save-every",
        "1",
        "--warmup",
        "1",
        *extra,
    ]


def load_last(out: Path) -> dict:
    return torch.load(out / "last.pt", weights_only=True)


@pytest.mark.slow
def test_resume_reproduces_the_next_step(mnistm, tmp_path):
    straight = run_module("p1.train", *train_args(mnistm, tmp_path / "a", "--steps", "3"))
    assert straight.returncode == 0, straight.stderr
    part = run_module("p1.train", *train_args(mnistm, tmp_path / "b", "--steps", "3", "--stop-after", "2"))
    assert part.returncode == 0 and load_last(tmp_path / "b")["step"] == 2, part.stderr
    first_sitting = load_last(tmp_path / "b")["elapsed_s"]
    rest = run_module("p1.train", *train_args(mnistm, tmp_path / "b", "--steps", "3"))
    assert rest.returncode == 0 and "resumed" in rest.stdout, rest.stderr
    a, b = load_last(tmp_path / "a"), load_last(tmp_path / "b")
    assert a["step"] == b["step"] == 3
    last_record = read_metrics(tmp_path / "b" / "metrics.jsonl")[-1]
    assert last_record["step"] == 3 and last_record["elapsed_s"] >= first_sitting > 0  # both sittings counted
    assert b["elapsed_s"] >= last_record["elapsed_s"]
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resuming"
    model, _ = load_model(tmp_path / "b" / "model.pt", torch.device("cpu"))
    assert model.config.channels == (16, 32)


@pytest.mark.slow
def test_ddp_step_matches_one_process_averaging_both_ranks(mnistm, tmp_path):
    """One DDP step on two CPU processes (gloo) equals, to float rounding, one process that computes
    both ranks' losses on their own batches and noise, averages the gradients and steps."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "p1.train",
        *train_args(mnistm, out, "--steps", "1", "--device", "cpu"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world size 2" in result.stdout
    ddp = load_last(out)
    assert ddp["step"] == 1

    args = p1_train.build_parser().parse_args(train_args(mnistm, tmp_path / "ref", "--steps", "1"))
    seed_everything(args.seed)  # as p1.train's main does before building the model
    images, labels = load_split(mnistm, "train")
    parts, schedule = p1_train.build(args, torch.device("cpu")), NoiseSchedule()
    for rank in (0, 1):
        idx = p1_train.batch_indices(0, len(images), args.batch_size, rank, 2, args.seed)
        x0 = uint8_to_signed(images[idx]).contiguous(memory_format=torch.channels_last)
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + rank)
        gamma = args.min_snr_gamma or None  # as p1.train passes it: 0 is the simple loss
        loss = diffusion_loss(parts.model, schedule, x0, labels[idx], args.p_uncond, gen, parts.model.null_label, gamma)
        (loss / 2).backward()  # DDP averages the two ranks' gradients
    for group in parts.optimizer.param_groups:
        group["lr"] = p1_train.lr_at(0, args)
    torch.nn.utils.clip_grad_norm_(parts.model.parameters(), args.grad_clip)
    parts.optimizer.step()
    for name, tensor in parts.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    moved = sum((ddp["model"][k] - v).abs().sum() for k, v in parts.model.state_dict().items() if v.is_floating_point())
    assert moved < 1e-3 and any(
        not torch.equal(a, b) for a, b in zip(ddp["model"].values(), load_init(mnistm, tmp_path).values())
    )


def load_init(mnistm: Path, tmp_path: Path) -> dict:
    """The untrained model's weights for the same seed (to check that the step changed them)."""
    args = p1_train.build_parser().parse_args(train_args(mnistm, tmp_path / "init", "--steps", "1"))
    seed_everything(args.seed)
    return p1_train.build(args, torch.device("cpu")).model.state_dict()
