"""The report commands: P2's η grid / interpolation helpers, P1's figures and P3's table + t-SNE, on tiny inputs."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, make_digit_dataset, run_module
from hw2lib.checkpoints import save_checkpoint
from hw2lib.ddim_figures import ALPHAS, ETAS, eta_grid, interpolation, lerp, save_figure, slerp
from hw2lib.schedule import NoiseSchedule
from p1.model import ConditionalUNet, UNetConfig
from p1.train import inference_checkpoint


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


@pytest.mark.slow
def test_p2_figures_drawn_by_the_digit_model(tmp_path):
    """The report's P2 figures drawn by a P1 checkpoint through the same DDIM: three files, repeatable."""
    torch.manual_seed(0)
    model = ConditionalUNet(UNetConfig(channels=(16, 32), groups=8, heads=2))
    save_checkpoint(inference_checkpoint(model, NoiseSchedule(), step=0), tmp_path / "tiny.pt")
    names = ["digit_eta_grid.png", "digit_interpolation_linear.png", "digit_interpolation_slerp.png"]
    for out in ("a", "b"):
        args = ["--checkpoint", tmp_path / "tiny.pt", "--out", tmp_path / out, "--digit", "7"]
        result = run_module("p1.ddim_figures", *args)
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in (tmp_path / out).iterdir()) == names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    refused = run_module("p2.figures", "--out", tmp_path / "c")  # the face version needs the course's files
    assert refused.returncode == 2 and "--noise-dir" in refused.stderr and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_p1_figures_command(tmp_path):
    torch.manual_seed(0)
    model = ConditionalUNet(UNetConfig(channels=(16, 32), groups=8, heads=2))
    save_checkpoint(inference_checkpoint(model, NoiseSchedule(), step=0), tmp_path / "tiny.pt")
    args = ["--checkpoint", tmp_path / "tiny.pt", "--steps", "3"]
    result = run_module("p1.figures", "--out", tmp_path / "fig", *args)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "fig" / "digit_grid.png") as grid:
        assert grid.size == (10 * 30 + 2, 10 * 30 + 2)  # 10×10 digits of 28 px with 2 px gaps
    with Image.open(tmp_path / "fig" / "reverse_process.png") as frames:
        assert frames.size == (1440, 540)  # 6 columns × 1.6 in, 3.6 in high, at 150 dpi
    with Image.open(tmp_path / "fig" / "architecture.png") as drawing:
        assert drawing.size[0] == 1650 and drawing.size[1] > 600


def test_architecture_stages_follow_the_model():
    """The drawing's shapes and parameter counts come from the model itself."""
    from p1.figures import stage_shapes

    model = ConditionalUNet(UNetConfig(channels=(16, 32), groups=8, heads=2))
    stages = stage_shapes(model)
    assert stages[0][:3] == ("stem", "PixelUnshuffle(2) + conv 3×3", (16, 14, 14))
    assert stages[-1][:3] == ("out", "GroupNorm, SiLU, conv 3×3, PixelShuffle(2)", (3, 28, 28))
    assert [s[2] for s in stages if s[0] == "mid"] == [(32, 7, 7), (32, 7, 7)]
    embeddings = sum(p.numel() for m in (model.time_mlp, model.class_emb) for p in m.parameters())
    assert sum(s[3] for s in stages) + embeddings == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_p3_report_command(tmp_path):
    digits = tmp_path / "digits"
    for name, seed, mode in (("mnistm", 0, "RGB"), ("usps", 1, "L"), ("svhn", 2, "RGB")):
        make_digit_dataset(digits / name, n=40, seed=seed, mode=mode)
    runs = tmp_path / "runs"
    flags = ("--steps", "2", "--batch-size", "8", "--eval-every", "1", "--width", "8")
    result = run_module(
        "p3.train", "--source", digits / "mnistm", "--target", digits / "usps", "--out-dir", runs / "usps_dann", *flags
    )
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_module(
        "p3.refine",
        "--init-from",
        runs / "usps_dann" / "best.pt",
        "--target",
        digits / "usps",
        "--out-dir",
        runs / "usps_dann-plus",
        *flags[:-2],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "report"
    result = run_module("p3.report", "--digits", digits, "--runs", runs, "--out", out, "--tsne-per-domain", "40")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (out / "accuracy.csv").read_text().splitlines()
    assert rows[0] == "method,mnistm_to_svhn,mnistm_to_usps"
    methods = [r.split(",")[0] for r in rows[1:]]
    assert methods == ["source-only", "dann", "dann-plus", "dann-plus+test-time-bn", "target-only"]
    cells = {r.split(",")[0]: r.split(",")[1:] for r in rows[1:]}
    stored = torch.load(runs / "usps_dann" / "best.pt", weights_only=True)["val_accuracy"]
    assert cells["dann"][0] == "" and abs(float(cells["dann"][1]) - stored) < 1e-4  # re-measured, as at training
    assert cells["source-only"] == ["", ""]  # not trained here
    # 40 val images are fewer than the 256 that test-time statistics need: the two rows must agree
    assert cells["dann-plus+test-time-bn"] == cells["dann-plus"]
    assert "| DANN |" in (out / "accuracy.md").read_text()
    for method in ("dann", "dann-plus"):
        for kind in ("class", "domain"):
            with Image.open(out / f"tsne_usps_{method}_{kind}.png") as plot:
                assert plot.size == (825, 750)  # 5.5 × 5 inches at 150 dpi
    assert not list(out.glob("tsne_svhn_*.png"))
    table = (out / "tsne.md").read_text().splitlines()
    assert table[0].startswith("| | by class | by domain | k-NN domain agreement (k = 10) | its chance level |")
    assert [row.split(" | ")[0] for row in table[2:]] == ["| DANN, MNIST-M → USPS", "| DANN+, MNIST-M → USPS"]
    assert all(row.split(" | ")[4] == "0.49" for row in table[2:])  # 40 + 40 points: 2·40·39 / (80·79)


def test_domain_mixing_is_one_for_separate_domains_and_near_chance_for_shuffled_ones():
    from p3.report import domain_mixing

    rng = np.random.default_rng(0)
    domains = np.array([0] * 300 + [1] * 100)
    apart = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal(50, 1, (100, 2))])
    agree, chance = domain_mixing(apart, domains)
    assert agree == 1.0 and chance == pytest.approx((300 * 299 + 100 * 99) / (400 * 399))  # 0.6241…
    mixed_agree, _ = domain_mixing(rng.normal(0, 1, (400, 2)), domains)
    assert abs(mixed_agree - chance) < 0.03
    # ten classes, each drawn as two clusters side by side, one per domain
    centres = np.repeat(np.arange(10)[:, None] * [10.0, 0.0], 40, axis=0)
    pairs = np.concatenate([centres, centres + [3.0, 0.0]]) + rng.normal(0, 0.3, (800, 2))
    assert domain_mixing(pairs, np.array([0] * 400 + [1] * 400))[0] > 0.99


def test_class_agreement_is_one_for_separate_classes_and_a_tenth_for_overlapping_ones():
    from p3.report import class_agreement

    rng = np.random.default_rng(0)
    classes = np.repeat(np.arange(10), 50)
    separate = np.repeat(np.arange(10)[:, None] * [20.0, 0.0], 50, axis=0) + rng.normal(0, 1, (500, 2))
    assert class_agreement(separate, classes) == 1.0
    assert abs(class_agreement(rng.normal(0, 1, (500, 2)), classes) - 0.1) < 0.03


def test_report_template_includes_every_table_and_refuses_a_missing_one(tmp_path, monkeypatch):
    """REPORT.md is the template with each include replaced by the file's text; a missing table stops it."""
    import render_report

    monkeypatch.setattr(render_report, "REPO", tmp_path)
    (tmp_path / "t.md").write_text("| a |\n|---|\n")
    rendered = render_report.render("# R\n<!-- include t.md -->\nend\n")
    assert rendered == render_report.HEADER + "# R\n| a |\n|---|\nend\n"
    with pytest.raises(SystemExit, match="missing.md"):
        render_report.render("<!-- include missing.md -->\n")


def test_report_md_is_the_rendered_template():
    """The committed REPORT.md is exactly what report/report.sh would write from the committed tables."""
    import render_report

    template = (REPO / "report" / "report.md.in").read_text()
    assert (REPO / "REPORT.md").read_text() == render_report.render(template)


def test_training_table_rows_and_column_title(tmp_path, capsys):
    """studies/p1_training.py: one row per logged evaluation, loss-only lines skipped, the guided setting named."""
    import json

    import p1_training

    log = tmp_path / "m.jsonl"
    evaluation = {"eval_s1_accuracy": 0.788, "eval_s1_frechet": 6.6401, "eval_s1_floor": 4.174}
    evaluation |= {"eval_shipped_accuracy": 0.992, "eval_shipped_frechet": 9.765, "eval_shipped_floor": 4.174}
    lines = [{"step": 50, "loss": 0.1}, {"step": 1500, "loss": 0.1, **evaluation, "eval_score": 0.86916}]
    log.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    p1_training.main([str(log), "--guided", "s = 5, t ≤ 499"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| log | step | s = 1: accuracy | s = 1: Fréchet (floor) | s = 5, t ≤ 499: accuracy |")
    assert out[2:] == ["| m.jsonl | 1,500 | 78.8 % | 6.64 (4.17) | 99.2 % | 9.77 (4.17) | 0.8692 |"]


def test_training_table_title_from_the_logged_setting(tmp_path, capsys):
    """Without --guided the title is the setting the monitor logged; an unlabelled or mixed log is an error."""
    import json

    import p1_training

    evaluation = {"eval_s1_accuracy": 0.8, "eval_s1_frechet": 6.0, "eval_s1_floor": 4.0, "eval_score": 0.9}
    evaluation |= {"eval_shipped_accuracy": 0.99, "eval_shipped_frechet": 9.0, "eval_shipped_floor": 4.0}
    labelled, other, bare = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    labelled.write_text(json.dumps({"step": 1000, **evaluation, "eval_shipped_setting": "s = 4, φ = 1, t ≤ 499"}))
    other.write_text(json.dumps({"step": 1000, **evaluation, "eval_shipped_setting": "s = 5, φ = 1"}))
    bare.write_text(json.dumps({"step": 1000, **evaluation}))
    p1_training.main([str(labelled)])
    assert (
        capsys.readouterr()
        .out.splitlines()[0]
        .endswith("| s = 4, φ = 1, t ≤ 499: accuracy | s = 4, φ = 1, t ≤ 499: Fréchet (floor) | score |")
    )
    with pytest.raises(SystemExit, match="name it with --guided"):
        p1_training.main([str(labelled), str(bare)])
    with pytest.raises(SystemExit, match=r"different guided settings \(s = 4, φ = 1, t ≤ 499, s = 5, φ = 1\)"):
        p1_training.main([str(labelled), str(other)])


def test_p3_study_table_spread_and_a_path_that_is_not_a_run(tmp_path):
    """studies/p3_study.py: val selection, the train-split check and, without target labels, the lowest
    information score for a p3.train run and the last evaluation for a p3.refine run (whose losses
    minimise that score already)."""
    import json
    import sys

    from conftest import run

    def write_run(name: str, evals: list[tuple[int, float, float, float]], args: dict) -> str:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "record.jsonl").write_text(json.dumps({"sitting": 1, "args": args}) + "\n")
        lines = [{"step": 50, "loss": 0.5, "elapsed_s": 30.0}]  # a loss-only line: not an evaluation
        for step, val, train, info in evals:
            lines.append(
                {"step": step, "val_accuracy": val, "target_train_accuracy": train, "information_score": info}
                | {"elapsed_s": 60.0 * step / 100}
            )
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        return str(folder)

    trained = {"source": ["/d/mnistm"], "target": "/d/usps"}
    refined = {"init_from": "/r/usps_x-first_s0/best.pt", "target": "/d/usps"}
    a = write_run("usps_x_s0", [(100, 0.90, 0.88, -1.0), (200, 0.95, 0.94, -1.5), (300, 0.95, 0.93, -2.0)], trained)
    b = write_run("usps_x_s1", [(100, 0.80, 0.79, -0.5), (200, 0.85, 0.84, -0.4)], {**trained, "init_from": None})
    c = write_run("usps_x_s2", [(100, 0.80, 0.79, -0.5), (200, 0.85, 0.84, -0.4)], refined)
    script = str(REPO / "studies" / "p3_study.py")
    result = run([sys.executable, script, a, b, c, "--spread", "usps_x_s"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    info, last = "lowest information score", "last evaluation"
    assert (
        lines[2] == f"| usps_x_s0 | 95.00 % | 94.00 % | 200 | {info} | 95.00 % | 93.00 % | 300 | 3.0 |"
    )  # first of equals
    assert lines[3] == f"| usps_x_s1 | 85.00 % | 84.00 % | 200 | {info} | 80.00 % | 79.00 % | 100 | 2.0 |"
    assert lines[4] == f"| usps_x_s2 | 85.00 % | 84.00 % | 200 | {last} | 85.00 % | 84.00 % | 200 | 2.0 |"
    assert lines[-3:] == [
        "- val: 88.33 % / 85.00 % / 95.00 %",
        "- train split: 87.33 % / 84.00 % / 94.00 %",
        "- no val selection in this run, val: 86.67 % / 80.00 % / 95.00 %",
    ]
    (tmp_path / "usps_x_s3.log").write_text("a training's console output\n")
    bad = run([sys.executable, script, a, str(tmp_path / "usps_x_s3.log")])
    assert bad.returncode != 0 and bad.stdout == ""
    assert bad.stderr.strip() == f"error: {tmp_path / 'usps_x_s3.log'}: not a run folder (no metrics.jsonl in it)"
