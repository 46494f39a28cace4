"""P1: model shapes, the guidance convention, sampler determinism, hw2_1.sh files, training (DDP, resume)."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, assert_user_error, make_digit_dataset, run_module, run_script, shared_file
from hw2lib.checkpoints import save_checkpoint
from hw2lib.schedule import NoiseSchedule
from p1.generate import digit_file_names
from p1.model import ConditionalUNet, UNetConfig
from p1.sampling import (
    SOLVERS,
    ClassifierFreeGuidance,
    SamplingConfig,
    draw_digits,
    generate,
    initial_noise,
)
from p1.train import inference_checkpoint

TINY = UNetConfig(channels=(16, 32), groups=8, heads=2)


def tiny_model(seed: int = 0) -> ConditionalUNet:
    torch.manual_seed(seed)
    model = ConditionalUNet(TINY)
    with torch.no_grad():  # the zero-initialised output layer would make every test trivial
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("p1") / "tiny.pt"
    save_checkpoint(inference_checkpoint(tiny_model(), NoiseSchedule(), step=0), path)
    return path


@pytest.fixture(scope="module")
def mnistm(tmp_path_factory) -> Path:
    return make_digit_dataset(tmp_path_factory.mktemp("data") / "mnistm", n=64, seed=0)


@pytest.mark.parametrize(
    "config", [UNetConfig(), TINY, UNetConfig(channels=(16, 32, 32), groups=8, patch_size=1, image_size=28)]
)
def test_model_output_shape(config):
    model = ConditionalUNet(config)
    x = torch.randn(3, 3, 28, 28)
    eps = model(x, torch.tensor([0, 500, 999]), torch.tensor([0, 9, model.null_label]))
    assert eps.shape == (3, 3, 28, 28)


def test_config_round_trips_through_checkpoint_dict():
    assert UNetConfig.from_dict(UNetConfig().to_dict()) == UNetConfig()


def test_guidance_scale_convention():
    model = tiny_model()
    x, t, y = torch.randn(4, 3, 28, 28), torch.full((4,), 500), torch.tensor([1, 2, 3, 4])
    with torch.no_grad():
        cond = model(x, t, y)
        uncond = model(x, t, torch.full_like(y, model.null_label))
        for scale in (0.0, 1.0, 3.0):
            guided = ClassifierFreeGuidance(model, y, scale, NoiseSchedule())(x, t)
            torch.testing.assert_close(guided, uncond + scale * (cond - uncond), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ClassifierFreeGuidance(model, y, 1.0, NoiseSchedule())(x, t), cond)
        torch.testing.assert_close(
            ClassifierFreeGuidance(model, y, 0.0, NoiseSchedule())(x, t), uncond, rtol=1e-5, atol=1e-5
        )
    assert not torch.allclose(cond, uncond), "labels must change the prediction"


def test_guidance_rescale_restores_the_conditional_contrast_of_x0():
    model, schedule = tiny_model(), NoiseSchedule()
    x, t, y = torch.randn(4, 3, 28, 28), torch.full((4,), 300), torch.tensor([1, 2, 3, 4])
    a = schedule.alpha_bar(t).view(-1, 1, 1, 1)

    def x0(eps):
        return (x - (1 - a).sqrt() * eps) / a.sqrt()

    with torch.no_grad():
        plain = ClassifierFreeGuidance(model, y, 5.0, schedule)(x, t)
        torch.testing.assert_close(ClassifierFreeGuidance(model, y, 5.0, schedule, 0.0)(x, t), plain)
        full = ClassifierFreeGuidance(model, y, 5.0, schedule, 1.0)(x, t)
        cond = model(x, t, y)
        torch.testing.assert_close(x0(full).flatten(1).std(1), x0(cond).flatten(1).std(1), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(x0(plain).flatten(1).std(1), x0(cond).flatten(1).std(1), rtol=1e-2)
        half = ClassifierFreeGuidance(model, y, 5.0, schedule, 0.5)(x, t)
        torch.testing.assert_close(x0(half), (x0(full) + x0(plain)) / 2, rtol=1e-4, atol=1e-4)  # linear in φ


def test_guidance_interval_guides_inside_and_uses_the_conditional_model_alone_outside():
    model, schedule = tiny_model(), NoiseSchedule()
    x, y = torch.randn(4, 3, 28, 28), torch.tensor([1, 2, 3, 4])
    guided = ClassifierFreeGuidance(model, y, 4.0, schedule, interval=(200, 600))
    everywhere = ClassifierFreeGuidance(model, y, 4.0, schedule)
    with torch.no_grad():
        for step in (199, 601, 999):
            t = torch.full((4,), step)
            torch.testing.assert_close(guided(x, t), model(x, t, y))
        for step in (200, 400, 600):
            t = torch.full((4,), step)
            torch.testing.assert_close(guided(x, t), everywhere(x, t))
            assert not torch.allclose(guided(x, t), model(x, t, y))
    calls = []
    model.register_forward_hook(lambda m, inputs, out: calls.append(len(inputs[0])))
    config = SamplingConfig(steps=10, guidance=4.0, interval=(200, 600), batch_size=4)
    generate(model, schedule, y, initial_noise(4, 0), config)
    # the trailing 10-step grid is 999, 899, …, 99: 599, 499, 399 and 299 fall inside [200, 600]
    assert calls == [4, 4, 4, 4, 8, 8, 8, 8, 4, 4]


def test_sampling_is_deterministic_and_batch_independent():
    model, schedule = tiny_model(), NoiseSchedule()
    labels = torch.arange(10).repeat_interleave(2)
    noise = initial_noise(20, seed=3)
    a = generate(model, schedule, labels, noise, SamplingConfig(steps=5, batch_size=20))
    b = generate(model, schedule, labels, noise, SamplingConfig(steps=5, batch_size=7))
    # Far below one grey level (2/255), far above float noise: oneDNN picks convolution kernels by batch
    # size on some CPUs (seen: 2.8e-4 on an AVX-512 FP16 Xeon); a label/noise mix-up between chunks is O(1).
    torch.testing.assert_close(a, b, rtol=0, atol=2e-3)
    assert torch.equal(a, generate(model, schedule, labels, noise, SamplingConfig(steps=5, batch_size=20)))
    ddpm_like = SamplingConfig(solver="ddim", steps=5, eta=1.0)
    c1 = generate(model, schedule, labels, noise, ddpm_like, generator=torch.Generator().manual_seed(1))
    c2 = generate(model, schedule, labels, noise, ddpm_like, generator=torch.Generator().manual_seed(1))
    c3 = generate(model, schedule, labels, noise, ddpm_like, generator=torch.Generator().manual_seed(2))
    assert torch.equal(c1, c2) and not torch.equal(c1, c3)
    # draw_digits hands its generator to the sampler: the same digits as generate() from the same noise
    d1, d_labels = draw_digits(model, schedule, 2, 3, ddpm_like, generator=torch.Generator().manual_seed(1))
    assert torch.equal(d_labels, labels) and torch.equal(d1, c1)
    for solver in SOLVERS:  # each solver on its own: deterministic, and not the other one
        config = SamplingConfig(solver=solver, steps=5)
        assert torch.equal(
            generate(model, schedule, labels, noise, config), generate(model, schedule, labels, noise, config)
        )
    ddim, dpm = (
        generate(model, schedule, labels, noise, SamplingConfig(solver=s, steps=5)) for s in ("ddim", "dpm++2m")
    )
    assert not torch.equal(ddim, dpm)


def test_sampling_stays_fp32_even_inside_a_bf16_autocast_region():
    """Inference is fp32 on every device (the grader's 2080 Ti has no fast bf16): the model sees and
    returns float32 at every step, and the digits are float32."""
    model, schedule = tiny_model(), NoiseSchedule()
    dtypes = []
    model.register_forward_hook(lambda m, inputs, out: dtypes.append((inputs[0].dtype, out.dtype)))
    labels = torch.arange(10)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as if a caller had left autocast on
        digits = generate(model, schedule, labels, initial_noise(10, 0), SamplingConfig(steps=3))
    assert digits.dtype == torch.float32 and dtypes and set(dtypes) == {(torch.float32, torch.float32)}
    plain = generate(model, schedule, labels, initial_noise(10, 0), SamplingConfig(steps=3))
    assert torch.equal(digits, plain)


def test_initial_noise_prefix_is_stable():
    assert torch.equal(initial_noise(1000, 0)[:100], initial_noise(100, 0))


def test_file_names():
    names = digit_file_names(100)
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[:2] == ["0_001.png", "0_002.png"] and names[99] == "0_100.png" and names[-1] == "9_100.png"


def read_folder(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for p in sorted(folder.iterdir()):
        with Image.open(p) as image:
            assert image.mode == "RGB" and image.size == (28, 28), p
            out[p.name] = np.asarray(image)
    return out


@pytest.mark.slow
def test_generate_writes_exactly_the_grader_files_and_repeats(tiny_checkpoint, tmp_path):
    args = ["--checkpoint", tiny_checkpoint, "--steps", "3", "--per-class", "3"]
    first = run_module("p1.generate", tmp_path / "a", *args)
    second = run_module("p1.generate", tmp_path / "b", *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = read_folder(tmp_path / "a"), read_folder(tmp_path / "b")
    assert list(a) == sorted(digit_file_names(3))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len({a[k].tobytes() for k in a}) == len(a), "every digit must differ"


@pytest.mark.slow
def test_hw2_1_shipped_model(tmp_path):
    """hw2_1.sh as the grader runs it, then its 1000 digits scored by the grader's LeNet against a bar near
    the shipped score (99.0 % at seed 0 on our CPUs; 98.9–99.6 % over starting seeds 0–4, docs/p1-studies.md)."""
    checkpoint = REPO / "p1" / "checkpoints" / "ddpm_mnistm.pt"
    if not checkpoint.exists():
        pytest.skip("shipped checkpoint missing: run bash hw2_download.sh")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("a foreign file: kept, and reported")
    result = run_script("hw2_1.sh", out)
    assert result.returncode == 0, result.stderr
    assert "note:" in result.stdout and "notes.txt" in result.stdout
    (out / "notes.txt").unlink()
    files = read_folder(out)
    assert list(files) == sorted(digit_file_names(100))
    assert not list(tmp_path.glob(".*staging*")), "staging folder left behind"
    classifier = shared_file("evaluator", "Classifier.pth")
    scored = run_module("p1.evaluate", out, "--classifier", classifier, "--grid", tmp_path / "grid.png")
    assert scored.returncode == 0, scored.stderr
    accuracy = float(scored.stdout.split()[1])
    per_digit = [float(v) for v in re.findall(r"\d: (\d\.\d+)", scored.stdout.splitlines()[1])]
    assert accuracy >= 0.985 and len(per_digit) == 10 and min(per_digit) >= 0.95, scored.stdout
    assert (tmp_path / "grid.png").exists()


@pytest.mark.slow
def test_bad_inputs(tmp_path, tiny_checkpoint):
    (tmp_path / "file").write_text("x")
    assert_user_error(run_script("hw2_1.sh", tmp_path / "file"), "not a directory")
    assert_user_error(run_module("p1.generate", tmp_path / "o", "--checkpoint", tmp_path / "none.pt"), "no such file")
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    assert_user_error(run_module("p1.generate", tmp_path / "o", "--checkpoint", tmp_path / "bad.pt"), "not a loadable")
    torch.save({"model": {}, "config": {"nope": 1}, "schedule": {}}, tmp_path / "cfg.pt")
    assert_user_error(
        run_module("p1.generate", tmp_path / "o", "--checkpoint", tmp_path / "cfg.pt"), "does not describe a P1 model"
    )
    assert_user_error(run_module("p1.generate", tmp_path / "o", "--steps", "0"), "--steps and --batch-size must be ≥ 1")
    assert not (tmp_path / "o").exists()
    assert_user_error(
        run_module("p1.evaluate", tmp_path / "nothing", "--classifier", tmp_path / "c.pth"), "no such directory"
    )


def test_guidance_label_names_scale_rescale_and_interval():
    assert SamplingConfig().guidance_label() == "s = 3, φ = 1, t ≤ 499"
    assert (
        SamplingConfig(guidance=2.5, rescale=0.7, interval=(200, 499)).guidance_label()
        == "s = 2.5, φ = 0.7, 200 ≤ t ≤ 499"
    )
    assert SamplingConfig(guidance=5, interval=None).guidance_label() == "s = 5, φ = 1"


def test_monitor_record_scores_both_settings_and_names_the_guided_one(monkeypatch):
    """The monitor's record: both settings' numbers, score = mean(acc − 0.01·FD/floor), the guided setting's label."""
    from p1.monitor import Monitor, SettingScore

    monitor = Monitor.__new__(Monitor)
    monitor.config, monitor.per_class = SamplingConfig(guidance=3.0), 1
    fixed = {1.0: SettingScore(0.8, 6.0, 4.0), 3.0: SettingScore(0.99, 9.0, 4.0)}
    monkeypatch.setattr(Monitor, "score_setting", lambda self, ema, schedule, config: fixed[config.guidance])
    score, record = monitor.evaluate(None, None)
    assert score == pytest.approx(((0.8 - 0.015) + (0.99 - 0.0225)) / 2)
    assert record == {
        "eval_s1_accuracy": 0.8, "eval_s1_frechet": 6.0, "eval_s1_floor": 4.0,
        "eval_shipped_accuracy": 0.99, "eval_shipped_frechet": 9.0, "eval_shipped_floor": 4.0,
        "eval_score": 0.87625, "eval_shipped_setting": "s = 3, φ = 1, t ≤ 499",
    }  # fmt: skip
