"""P1 training: the min-SNR loss, resuming bit for bit, one DDP step equal to one process."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, is_progress_bar, make_digit_dataset, run_module
from hw2lib.cli import seed_everything
from hw2lib.digits import load_split
from hw2lib.images import uint8_to_signed
from hw2lib.metrics_log import read_metrics
from hw2lib.run_record import read_record
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
def test_each_sitting_is_recorded_and_a_changed_resume_is_refused(mnistm, tmp_path):
    """record.jsonl: one line a sitting (arguments, start step, commit); resuming with another --lr is
    refused before anything is written, and with --allow-changed-args it trains and records the change."""
    out = tmp_path / "run"
    first = run_module("p1.train", *train_args(mnistm, out, "--steps", "3", "--stop-after", "1"))
    assert first.returncode == 0, first.stderr
    assert not (out / "args.json").exists()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = run_module("p1.train", *train_args(mnistm, out, "--steps", "3", "--lr", "0.5"))
    assert refused.returncode != 0 and refused.stderr.count("error:") == 1
    assert "--lr 0.0008 → 0.5" in refused.stderr and "--allow-changed-args" in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    allowed = run_module("p1.train", *train_args(mnistm, out, "--steps", "3", "--lr", "0.5", "--allow-changed-args"))
    assert allowed.returncode == 0, allowed.stderr
    lines = read_record(out)
    assert [(line["sitting"], line["step"]) for line in lines] == [(1, 0), (2, 1)]
    assert lines[1]["changed"] == {"lr": [0.0008, 0.5]} and "changed" not in lines[0]
    assert lines[0]["args"]["data_root"] == os.path.realpath(mnistm) and lines[0]["args"]["lr"] == 0.0008
    assert all(re.fullmatch(r"[0-9a-f]{40}", line["commit"]) for line in lines if line["commit"] is not None)
    assert load_last(out)["step"] == 3


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


# ---------------------------------------------------------------- --bf16 on a GPU without bf16


@pytest.mark.parametrize(
    "device, want_bf16, gpu_has_bf16, expected",
    [
        ("cpu", True, False, torch.bfloat16),  # CPU autocast has bf16, whatever the GPU
        ("cpu", False, True, None),
        ("cuda", True, True, torch.bfloat16),  # Ampere and later
        ("cuda", True, False, None),  # T4, V100, RTX 2080 Ti: fp32
        ("cuda", False, True, None),
        ("meta", True, True, None),  # no bf16 autocast there (nor on mps in torch 2.0.1)
    ],
)
def test_autocast_dtype_is_bf16_only_where_the_device_has_it(monkeypatch, device, want_bf16, gpu_has_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: gpu_has_bf16)
    assert p1_train.autocast_dtype(torch.device(device), want_bf16) is expected


def test_emulated_bf16_of_newer_torch_does_not_count(monkeypatch):
    """Newer torch's is_bf16_supported() counts emulated bf16 (slow, pre-Ampere) unless asked not to."""

    def newer_torch_on_a_t4(including_emulation: bool = True) -> bool:
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", newer_torch_on_a_t4)
    assert p1_train.autocast_dtype(torch.device("cuda"), True) is None


def test_autocast_block_is_bf16_on_the_cpu_and_absent_for_none():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with p1_train.autocast(torch.device("cpu"), torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        assert torch.is_autocast_cpu_enabled()
    with p1_train.autocast(torch.device("cpu"), None):
        assert (a @ b).dtype == torch.float32
        assert not torch.is_autocast_cpu_enabled()


def autocast_as_in_torch_2_0_1(real):
    """``torch.autocast`` with torch 2.0.1's check (torch/amp/autocast_mode.py): a bf16 CUDA autocast
    raises on a card without bf16, even with ``enabled=False`` (later versions check only when enabled)."""

    def autocast(device_type, dtype=None, enabled=True, cache_enabled=None):
        if device_type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise RuntimeError("Current CUDA Device does not support bfloat16. Please switch dtype to float16.")
        return real(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    return autocast


def cpu_for_cuda(where):
    """``where`` (a device, a device string or anything else ``.to`` takes) with CUDA replaced by the CPU."""
    if isinstance(where, torch.device) and where.type == "cuda":
        return torch.device("cpu")
    if isinstance(where, str) and where.startswith("cuda"):
        return "cpu"
    return where


@pytest.fixture()
def gpu_without_bf16(monkeypatch):
    """A CUDA card before Ampere (the grader's RTX 2080 Ti, a T4, a V100), played by the CPU:
    ``--device cuda`` is accepted and ``proc.device.type`` is ``cuda``, but tensors and modules sent
    there stay on the CPU (so the run really trains), and ``torch.autocast`` checks bf16 as 2.0.1 does.
    ``torch.cuda.is_available`` stays False: torch's own internals (the optimiser's graph-capture
    check, the generators saved in last.pt) would otherwise go looking for a driver."""
    monkeypatch.setattr(p1_train, "pick_device", lambda name: torch.device(name))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch, "autocast", autocast_as_in_torch_2_0_1(torch.autocast))
    tensor_to, module_to = torch.Tensor.to, torch.nn.Module.to

    def redirected(to):
        return lambda self, *args, **kwargs: to(
            self, *map(cpu_for_cuda, args), **{k: cpu_for_cuda(v) for k, v in kwargs.items()}
        )

    monkeypatch.setattr(torch.Tensor, "to", redirected(tensor_to))
    monkeypatch.setattr(torch.nn.Module, "to", redirected(module_to))


def test_no_autocast_block_is_opened_for_fp32_even_on_a_gpu_without_bf16(gpu_without_bf16):
    """torch 2.0.1 raised for ``torch.autocast("cuda", dtype=torch.bfloat16, enabled=False)`` on such
    a card: the fp32 path must open no autocast at all (what the old ``enabled=args.bf16`` did)."""
    with pytest.raises(RuntimeError, match="does not support bfloat16"):  # the emulation holds
        torch.autocast("cuda", dtype=torch.bfloat16, enabled=False)
    cuda = torch.device("cuda")
    with p1_train.autocast(cuda, p1_train.autocast_dtype(cuda, want_bf16=True)):
        assert not torch.is_autocast_enabled()


def stderr_lines(captured: str) -> list[str]:
    """What a run wrote on stderr, progress bars aside."""
    return [line for line in captured.splitlines() if line.strip() and not is_progress_bar(line)]


@pytest.mark.slow
def test_bf16_on_a_gpu_without_bf16_warns_once_and_trains_in_fp32(gpu_without_bf16, mnistm, tmp_path, capsys):
    """The P1 recipe passes --bf16; on a pre-Ampere GPU under torch 2.0.1 that used to raise "Current
    CUDA Device does not support bfloat16" at its first step. It now warns once and trains on in fp32,
    exactly as a run without --bf16 (which 2.0.1 also refused, for the bf16 dtype of a disabled autocast)."""
    p1_train.main(train_args(mnistm, tmp_path / "bf16", "--steps", "1", "--device", "cuda", "--bf16"))
    captured = capsys.readouterr()
    assert "device cuda" in captured.out
    warnings = stderr_lines(captured.err)
    assert len(warnings) == 1 and warnings[0].startswith("warning: --bf16: this GPU has no bf16"), warnings
    assert "fp32" in warnings[0]

    p1_train.main(train_args(mnistm, tmp_path / "fp32", "--steps", "1", "--device", "cuda"))
    assert stderr_lines(capsys.readouterr().err) == []  # no --bf16, nothing to say

    with_bf16, without = load_last(tmp_path / "bf16"), load_last(tmp_path / "fp32")
    assert with_bf16["step"] == without["step"] == 1
    assert all(row["loss"] > 0 for row in read_metrics(tmp_path / "bf16" / "metrics.jsonl"))
    init = load_init(mnistm, tmp_path)
    assert any(not torch.equal(tensor, init[name]) for name, tensor in with_bf16["model"].items())  # it trained
    for name, tensor in with_bf16["model"].items():
        assert torch.isfinite(tensor).all() and torch.equal(tensor, without["model"][name]), name
