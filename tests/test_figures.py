"""The report commands: P2's η grid / interpolation helpers, P1's figures and P3's table + t-SNE, on tiny inputs."""

import torch
from PIL import Image

from conftest import make_digit_dataset, run_module
from hw2lib.checkpoints import save_checkpoint
from hw2lib.schedule import NoiseSchedule
from p1.model import ConditionalUNet, UNetConfig
from p1.train import inference_checkpoint
from p2.figures import ALPHAS, ETAS, eta_grid, interpolation, lerp, save_figure, slerp
from p3.model import ClassifierConfig, DigitClassifier


def toy_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.5 * x + 0.01 * t.float().view(-1, 1, 1, 1) / 1000


def test_slerp_endpoints_and_norm():
    gen = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(3, 32, 32, generator=gen), torch.randn(3, 32, 32, generator=gen)
    torch.testing.assert_close(slerp(x0, x1, 0.0), x0)
    torch.testing.assert_close(slerp(x0, x1, 1.0), x1, rtol=1e-4, atol=1e-4)
    middle_s, middle_l = slerp(x0, x1, 0.5), lerp(x0, x1, 0.5)
    assert abs(middle_s.norm() / x0.norm() - 1) < 0.02  # stays on the Gaussian shell
    assert middle_l.norm() / x0.norm() < 0.75  # linear interpolation shrinks towards 1/√2


def test_eta_grid_and_interpolation_shapes(tmp_path):
    noises = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    grid = eta_grid(toy_eps, noises, torch.device("cpu"))
    assert len(grid) == len(ETAS) and all(g.shape == noises.shape for g in grid)
    assert torch.equal(grid[1], eta_grid(toy_eps, noises, torch.device("cpu"))[1]), "η > 0 must be seeded"
    assert not torch.allclose(grid[0], grid[-1])
    strip = interpolation(toy_eps, noises[0], noises[1], slerp, torch.device("cpu"))
    assert strip.shape == (len(ALPHAS), 3, 32, 32)
    images = [torch.zeros(32, 32, 3, dtype=torch.uint8)] * 3
    save_figure([images, images], ["a", "b"], ["1", "2", "3"], tmp_path / "f.png")
    with Image.open(tmp_path / "f.png") as image:
        assert image.size[0] > image.size[1] > 0


def test_p1_figures_command(tmp_path):
    torch.manual_seed(0)
    model = ConditionalUNet(UNetConfig(channels=(16, 32), groups=8, heads=2))
    save_checkpoint(inference_checkpoint(model, NoiseSchedule(), step=0), tmp_path / "tiny.pt")
    selector = DigitClassifier(ClassifierConfig(width=8, feature_dim=16)).eval()
    save_checkpoint({"model": selector.state_dict(), "config": selector.config.to_dict()}, tmp_path / "sel.pt")
    args = [
        "--checkpoint",
        tmp_path / "tiny.pt",
        "--selector",
        tmp_path / "sel.pt",
        "--oversample",
        "1.2",
        "--steps",
        "3",
    ]
    result = run_module("p1.figures", "--out", tmp_path / "fig", *args)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "fig" / "digit_grid.png") as grid:
        assert grid.size == (10 * 30 + 2, 10 * 30 + 2)  # 10×10 digits of 28 px with 2 px gaps
    assert (tmp_path / "fig" / "reverse_process.png").stat().st_size > 0


def test_p3_report_command(tmp_path):
    digits = tmp_path / "digits"
    for name, seed, mode in (("mnistm", 0, "RGB"), ("usps", 1, "L"), ("svhn", 2, "RGB")):
        make_digit_dataset(digits / name, n=40, seed=seed, mode=mode)
    runs = tmp_path / "runs"
    for method in ("dann", "dann-plus"):
        result = run_module(
            "p3.train",
            "--method",
            method,
            "--source",
            digits / "mnistm",
            "--target",
            digits / "usps",
            "--out-dir",
            runs / f"usps_{method}",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--eval-every",
            "1",
        )
        assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "report"
    result = run_module("p3.report", "--digits", digits, "--runs", runs, "--out", out, "--tsne-per-domain", "40")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (out / "accuracy.csv").read_text().splitlines()
    assert rows[0] == "method,mnistm_to_svhn,mnistm_to_usps" and len(rows) == 5
    dann = next(r for r in rows if r.startswith("dann,")).split(",")
    stored = torch.load(runs / "usps_dann" / "best.pt", weights_only=True)["val_accuracy"]
    assert dann[1] == "" and abs(float(dann[2]) - stored) < 1e-4  # re-measured, same as at training time
    assert "| DANN |" in (out / "accuracy.md").read_text()
    assert (out / "tsne_usps_class.png").exists() and (out / "tsne_usps_domain.png").exists()
    assert not (out / "tsne_svhn_class.png").exists()
