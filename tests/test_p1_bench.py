"""P1's bench scripts: the front and its seed spread (studies/p1_front.py), the sweep (studies/p1_sweep.py)."""

import json

import pytest
import torch
from PIL import Image

from p1.sampling import ClassifierFreeGuidance


def front_row(guidance: float, interval, accuracy: float, worst: tuple, frechet: float, **extra) -> dict:
    row = {"solver": "dpm++2m", "steps": 10, "guidance": guidance, "rescale": 1.0, "interval": interval}
    row |= {"accuracy": accuracy, "worst_digit": worst[0], "worst_accuracy": worst[1], "frechet": frechet}
    return row | {"frechet_floor": 2.15, "seconds": 26.0} | extra


def test_front_is_drawn_at_seed_0_and_other_seeds_make_the_spread_table(tmp_path, capsys):
    """studies/p1_front.py: rows of other seeds never replace seed 0's; the spread table has their mean and low."""
    import json

    import p1_front

    guided = "dpm++2m 10 s=3 φ=1 t∈[0,499]"
    rows = [
        front_row(3.0, [0, 499], 0.995, (8, 0.98), 5.27),  # logged before sweeps had seeds: seed 0
        front_row(1.0, None, 0.874, (5, 0.79), 2.83, seed=0),
        front_row(3.0, [0, 499], 0.997, (8, 0.98), 4.93, seed=1),
        front_row(3.0, [0, 499], 0.993, (7, 0.97), 5.18, seed=2),
    ]
    log = tmp_path / "front.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p1_front.main([str(log), "--out", str(tmp_path / "front.png"), "--shipped", guided])
    out = capsys.readouterr().out.splitlines()
    assert out[2:4] == [
        "| dpm++2m 10 s=1 | 87.4 % | 5: 79 % | 2.83 | 2.15 | 26 |",
        f"| **{guided}** | 99.5 % | 8: 98 % | 5.27 | 2.15 | 26 |",
    ]
    assert out[7:] == [
        "| setting | seed 0 | seed 1 | seed 2 | mean | lowest digit |",
        "|---|---:|---:|---:|---:|---:|",
        f"| **{guided}** | 99.5 % / 5.27 | 99.7 % / 4.93 | 99.3 % / 5.18 | 99.50 % / 5.13 | 7: 97 % (seed 2) |",
    ]
    assert (tmp_path / "front.png").stat().st_size > 0
    log.write_text(json.dumps(rows[2]) + "\n")
    with pytest.raises(SystemExit, match="no seed-0 rows"):
        p1_front.main([str(log), "--out", str(tmp_path / "other.png"), "--shipped", guided])


def test_spread_table_names_every_seed_tied_at_the_lowest_digit():
    """studies/p1_front.py: the lowest digit names all the seeds (and digits) that reach it, not the first one."""
    import p1_front

    def run(digit, accuracy):
        return {"worst_digit": digit, "worst_accuracy": accuracy}

    assert p1_front.lowest({0: run(8, 0.98), 2: run(7, 0.97)}) == "7: 97 % (seed 2)"
    assert p1_front.lowest({4: run(8, 0.98), 1: run(8, 0.98), 0: run(5, 0.99)}) == "8: 98 % (seeds 1, 4)"
    assert (
        p1_front.lowest({4: run(8, 0.97), 2: run(9, 0.97), 3: run(8, 0.97)}) == "9: 97 % (seed 2), 8: 97 % (seeds 3, 4)"
    )


def test_sweep_draws_and_logs_every_seed(tmp_path, monkeypatch, capsys):
    """studies/p1_sweep.py --seeds: each seed reaches the sampler, and each row is logged with its seed."""
    import json

    import p1_sweep

    from p1.evaluate import DigitScores

    drawn = []

    def draw_digits(model, schedule, per_class, seed, config, generator=None):
        drawn.append((seed, config.guidance))
        return torch.zeros(10 * per_class, 3, 28, 28), torch.arange(10).repeat_interleave(per_class)

    def score_digits(images, labels, lenet, real):
        accuracy = 0.9 + drawn[-1][0] / 100  # a score that tells the seeds apart
        return DigitScores(accuracy, {d: accuracy for d in range(10)})

    monkeypatch.setattr(p1_sweep, "load_model", lambda path, device: (None, None))
    monkeypatch.setattr(p1_sweep, "load_lenet", lambda path: None)
    monkeypatch.setattr(p1_sweep, "draw_digits", draw_digits)
    monkeypatch.setattr(p1_sweep, "score_digits", score_digits)
    log = tmp_path / "sweep.jsonl"
    p1_sweep.main(["--classifier", "c.pth", "--guidance", "1", "3", "--seeds", "0", "2", "--per-class", "1"])
    p1_sweep.main(["--classifier", "c.pth", "--guidance", "3", "--per-class", "1", "--log", str(log)])
    assert drawn == [(0, 1.0), (2, 1.0), (0, 3.0), (2, 3.0), (0, 3.0)]
    table = capsys.readouterr().out.splitlines()
    assert table[5].startswith("| dpm++2m | 10 | 1 | 1 | 1 | all | 2 | 92.00% | 0: 92% |")
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["seed"], r["guidance"], r["accuracy"]) for r in logged] == [(0, 3.0, 0.9)]


def test_sweep_eta_axis_is_ddim_only_seeded_by_the_row_and_logged(tmp_path, monkeypatch, capsys):
    """studies/p1_sweep.py --etas: η ≠ 0 runs DDIM only, with a generator seeded by the row's seed (so the
    row repeats) in a stream apart from the starting noise's, and its rows carry η in the table and the
    log; η = 0 rows are as before (no generator)."""
    import json

    import p1_sweep

    from p1.evaluate import DigitScores

    drawn = []

    def draw_digits(model, schedule, per_class, seed, config, generator=None):
        drawn.append((config.solver, config.eta, seed, None if generator is None else generator.initial_seed()))
        return torch.zeros(10 * per_class, 3, 28, 28), torch.arange(10).repeat_interleave(per_class)

    monkeypatch.setattr(p1_sweep, "load_model", lambda path, device: (None, None))
    monkeypatch.setattr(p1_sweep, "load_lenet", lambda path: None)
    monkeypatch.setattr(p1_sweep, "draw_digits", draw_digits)
    monkeypatch.setattr(p1_sweep, "score_digits", lambda *a: DigitScores(0.5, {d: 0.5 for d in range(10)}))
    log = tmp_path / "sweep.jsonl"
    flags = ["--classifier", "c.pth", "--guidance", "1", "--per-class", "1", "--log", str(log)]
    p1_sweep.main(flags + ["--solvers", "dpm++2m", "ddim", "--etas", "0", "0.5", "--seeds", "0", "3"])
    offset = p1_sweep.ETA_NOISE_OFFSET  # a stream apart from initial_noise(…, seed)'s
    assert offset != 0 and drawn == [
        ("dpm++2m", 0.0, 0, None),
        ("dpm++2m", 0.0, 3, None),
        ("ddim", 0.0, 0, None),
        ("ddim", 0.0, 3, None),
        ("ddim", 0.5, 0, offset),
        ("ddim", 0.5, 3, offset + 3),
    ]
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| d")]
    assert [r.split(" | ")[0] for r in rows] == ["| dpm++2m"] * 2 + ["| ddim"] * 2 + ["| ddim η=0.5"] * 2
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r.get("eta") for r in logged] == [None, None, None, None, 0.5, 0.5]
    import p1_front

    assert p1_front.label(logged[4]) == "ddim η=0.5 10 s=1"
    assert p1_front.label(logged[2]) == "ddim 10 s=1"


def test_sweep_loads_weak_model_only_when_autoguiding(monkeypatch):
    """studies/p1_sweep.py --weak with every --autoguidance 1 never runs the weak model, so never loads it."""
    import p1_sweep

    from p1.evaluate import DigitScores

    loaded = []

    def load_model(path, device):
        loaded.append(path)
        return ConstantEps(0.0), None

    monkeypatch.setattr(p1_sweep, "load_model", load_model)
    monkeypatch.setattr(p1_sweep, "load_lenet", lambda path: None)
    monkeypatch.setattr(p1_sweep, "draw_digits", lambda *a, **k: (torch.zeros(10, 3, 28, 28), torch.arange(10)))
    monkeypatch.setattr(p1_sweep, "score_digits", lambda *a: DigitScores(1.0, {0: 1.0}))
    common = ["--checkpoint", "strong.pt", "--classifier", "c.pth", "--guidance", "1", "--per-class", "1"]
    p1_sweep.main([*common, "--weak", "weak.pt"])
    assert loaded == ["strong.pt"]
    p1_sweep.main([*common, "--weak", "weak.pt", "--autoguidance", "1", "2"])
    assert loaded == ["strong.pt", "strong.pt", "weak.pt"]


class ConstantEps(torch.nn.Module):
    """ε = ``value`` + the label (so every row's source can be read off), on a parameter for its device."""

    null_label = 10

    def __init__(self, value: float):
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, x, t, y):
        return (self.value + y.float()).view(-1, 1, 1, 1).expand_as(x).clone()


def test_autoguidance_pushes_labelled_rows_away_from_the_weak_model():
    """studies/p1_sweep.AutoGuided: eps_weak + a · (eps − eps_weak) on labelled rows, the strong model's own
    ε on "no class" rows; under classifier-free guidance the conditional branch is the autoguided one."""
    import p1_sweep

    net = p1_sweep.AutoGuided(ConstantEps(1.0), ConstantEps(0.5), weight=3.0)
    x, t = torch.zeros(3, 1, 2, 2), torch.full((3,), 400)
    eps = net(x, t, torch.tensor([2, 10, 7]))
    # labelled: (0.5 + y) + 3 · ((1 + y) − (0.5 + y)) = y + 2; "no class": 1 + 10
    assert eps[:, 0, 0, 0].tolist() == [4.0, 11.0, 9.0]
    labels = torch.tensor([2, 7])
    guided = ClassifierFreeGuidance(net, labels, scale=2.0, schedule=None)(x[:2], t[:2])
    # eps_u + 2 · (eps_ag − eps_u) with eps_ag = y + 2 and eps_u = 11
    assert guided[:, 0, 0, 0].tolist() == [11.0 + 2 * (4.0 - 11.0), 11.0 + 2 * (9.0 - 11.0)]


def test_sweep_logs_autoguidance_and_refuses_it_without_a_weak_model(tmp_path, monkeypatch, capsys):
    import json

    import p1_front
    import p1_sweep

    from p1.evaluate import DigitScores

    nets = []

    def draw_digits(model, schedule, per_class, seed, config, generator=None):
        nets.append(model)
        return torch.zeros(10 * per_class, 3, 28, 28), torch.arange(10).repeat_interleave(per_class)

    strong, weak = ConstantEps(1.0), ConstantEps(0.5)
    monkeypatch.setattr(p1_sweep, "load_model", lambda path, device: (weak if path == "weak.pt" else strong, None))
    monkeypatch.setattr(p1_sweep, "load_lenet", lambda path: None)
    monkeypatch.setattr(p1_sweep, "draw_digits", draw_digits)
    monkeypatch.setattr(p1_sweep, "score_digits", lambda *a: DigitScores(0.9, {d: 0.9 for d in range(10)}))
    log = tmp_path / "sweep.jsonl"
    flags = ["--classifier", "c.pth", "--guidance", "1", "--per-class", "1", "--log", str(log)]
    p1_sweep.main(flags + ["--weak", "weak.pt", "--autoguidance", "1", "2"])
    assert nets[0] is strong and (nets[1].model, nets[1].weak, nets[1].weight) == (strong, weak, 2.0)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r.get("autoguidance"), r.get("weak")) for r in rows] == [(None, None), (2.0, "weak.pt")]
    assert [p1_front.label(r) for r in rows] == ["dpm++2m 10 s=1", "dpm++2m 10 s=1 a=2 weak=weak"]
    assert capsys.readouterr().out.splitlines()[5].startswith("| dpm++2m | 10 | 1 | 2 | 1 | all | 0 | 90.00% |")
    with pytest.raises(SystemExit):
        p1_sweep.main(flags + ["--autoguidance", "2"])
    assert capsys.readouterr().err.strip().endswith("error: --autoguidance other than 1 needs --weak")


def test_average_is_the_fp32_mean_and_refuses_another_model(tmp_path):
    """studies/p1_average.py: the mean of known weights, written in fp16, naming its inputs; one error line otherwise."""
    import sys

    from conftest import REPO, assert_user_error, run
    from hw2lib.checkpoints import save_checkpoint
    from p1.model import UNetConfig

    def run_script_file(*args):
        return run([sys.executable, REPO / "studies" / "p1_average.py", *args])

    old = UNetConfig(channels=(16, 32)).to_dict()
    del old["mid_blocks"]  # as releases before it stored: averaged into today's form
    paths, schedule = [], {"num_timesteps": 1000}
    for i, value in enumerate([1.0, 2.0, 4.5]):
        weights = {"w": torch.full((2,), value).half(), "n": torch.tensor([3])}
        save_checkpoint(
            {"model": weights, "step": value, "config": old, "schedule": schedule},
            tmp_path / f"{i}.pt",
        )
        paths.append(str(tmp_path / f"{i}.pt"))
    result = run_script_file(tmp_path / "avg.pt", *paths)
    assert result.returncode == 0, result.stderr
    merged = torch.load(tmp_path / "avg.pt", weights_only=True)
    assert merged["model"]["w"].dtype == torch.float16 and merged["model"]["w"].tolist() == [2.5, 2.5]
    assert merged["step"] == 4.5 and merged["averaged_from"] == paths
    assert merged["config"] == UNetConfig(channels=(16, 32)).to_dict()
    save_checkpoint(
        {
            "model": {"w": torch.ones(2).half()},
            "config": UNetConfig(channels=(16, 64)).to_dict(),
            "schedule": {"num_timesteps": 1000},
        },
        tmp_path / "other.pt",
    )
    refused = run_script_file(tmp_path / "bad.pt", paths[0], tmp_path / "other.pt")
    assert_user_error(refused, "other.pt", "another model")
    assert_user_error(run_script_file(tmp_path / "bad.pt", paths[0]), "two or more")
    save_checkpoint({"model": {}, "config": {"width": 3}, "schedule": schedule}, tmp_path / "alien.pt")
    assert_user_error(run_script_file(tmp_path / "bad.pt", paths[0], tmp_path / "alien.pt"), "alien.pt", "not describe")
    assert not (tmp_path / "bad.pt").exists()


def test_forward_cost_parses_configs_and_reports_each_relative_to_the_first(monkeypatch, capsys):
    """bench/p1_forward_cost.py: CHANNELS:MID_BLOCKS builds that UNet; each row has its parameter count,
    fastest and median pass, and the median over the first config's."""
    import argparse

    import p1_forward_cost

    from p1.model import ConditionalUNet, UNetConfig

    config = p1_forward_cost.parse_config("16,32:3")
    assert config.channels == (16, 32) and config.mid_blocks == 3
    with pytest.raises(argparse.ArgumentTypeError, match="expected CHANNELS:MID_BLOCKS"):
        p1_forward_cost.parse_config("16,32")
    seconds = {(64, 128): [0.3, 0.1, 0.2], (96, 192): [0.5, 0.4, 0.6]}
    monkeypatch.setattr(p1_forward_cost, "forward_seconds", lambda m, batch, rounds, warmup: seconds[m.config.channels])
    p1_forward_cost.main(["--config", "64,128:4", "--config", "96,192:2", "--rounds", "3"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| (")]
    params = [
        sum(p.numel() for p in ConditionalUNet(c).parameters()) / 1e6
        for c in (UNetConfig(mid_blocks=4), UNetConfig(channels=(96, 192)))
    ]
    assert rows == [
        f"| (64, 128) | 4 | {params[0]:.2f} M | 100.0 | 200.0 | 1.00× |",
        f"| (96, 192) | 2 | {params[1]:.2f} M | 400.0 | 500.0 | 2.50× |",
    ]
    assert [f"{p:.2f}" for p in params] == ["3.66", "6.45"]


def test_forward_cost_times_real_forward_passes():
    import p1_forward_cost

    from p1.model import ConditionalUNet, UNetConfig

    model = ConditionalUNet(UNetConfig(channels=(16, 32), groups=8, heads=2))
    times = p1_forward_cost.forward_seconds(model, 4, rounds=2, warmup=1)
    assert len(times) == 2 and all(0 < t < 60 for t in times)


def test_p1_rule_picks_the_closest_setting_that_passes(tmp_path, capsys):
    import p1_rule

    def row(ckpt, guidance, seed, acc, worst, frechet):
        return {"checkpoint": ckpt, "solver": "dpm++2m", "steps": 10, "guidance": guidance, "rescale": 1.0}, {
            "interval": [0, 499],
            "seed": seed,
            "digits": 1000,
            "accuracy": acc,
            "worst_accuracy": worst,
            "frechet": frechet,
            "frechet_floor": 2.0,
        }

    rows = []
    for seed in range(5):
        rows.append(row("a.pt", 3.0, seed, 0.995, 0.98, 5.0))  # passes, far
        rows.append(row("b.pt", 3.0, seed, 0.992, 0.97, 4.0))  # passes, closest
        rows.append(row("c.pt", 3.0, seed, 0.999, 0.96 if seed == 2 else 0.99, 3.0))  # one digit at 96 %: fails
        rows.append(row("d.pt", 3.0, seed, 0.985, 0.98, 2.5))  # mean under 99 %: fails
    rows.append(row("e.pt", 3.0, 0, 1.0, 1.0, 1.0))  # one seed only: not counted
    log = tmp_path / "x.front.jsonl"
    log.write_text("".join(json.dumps(a | b) + "\n" for a, b in rows))
    p1_rule.main([str(log)])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| x.front.jsonl")]
    assert [line.split(" | ")[0] for line in lines] == [f"| x.front.jsonl: {c}.pt" for c in ("b", "a", "d", "c")]
    assert lines[0].endswith("| 99.20 % | 97 % | 4.000 (2.000) | yes |")
    assert "The rule ships: x.front.jsonl: b.pt at dpm++2m 10 s=3 φ=1 t∈[0,499]." in out
    p1_rule.main([str(log), "--top", "2", "--plain"])
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("| model version | setting |")
    assert [line.split(" | ")[1] for line in out.splitlines()[2:4]] == ["guided: s = 3, rescale φ = 1, at t ≤ 499"] * 2
    assert "(2 more pairs below these" in out and "The rule ships: x, guided: s = 3" in out


@pytest.mark.parametrize(
    "checkpoint, setting, model, words",
    [
        ("stage13.front.jsonl: s13.pt", "dpm++2m 10 s=3 φ=1 t∈[0,499]", "stage 13", "guided: s = 3, rescale φ = 1, at t ≤ 499"),
        ("stage14_step1500.front.jsonl: a.pt", "dpm++2m 10 s=3.5 φ=1 t∈[100,499]", "stage 14 at step 1,500",
         "guided: s = 3.5, rescale φ = 1, at 100 ≤ t ≤ 499"),
        ("stage16.front.jsonl: b.pt", "dpm++2m 10 s=1", "stage 16", "model alone (s = 1)"),
        ("autoguidance.front.jsonl: c.pt", "dpm++2m 10 s=1 a=2 weak=bd953c9", "autoguidance", "autoguidance, a = 2"),
    ],
)  # fmt: skip
def test_p1_rule_names_models_and_settings_in_plain_words(checkpoint, setting, model, words):
    import p1_rule

    assert (p1_rule.plain_model(checkpoint), p1_rule.plain_setting(setting)) == (model, words)


def test_training_curves_draw_both_problems_from_the_shipped_logs(tmp_path):
    import training_curves

    from conftest import REPO

    logs = REPO / "logs" / "p3" / "shipped"
    assert [training_curves.shipped_seed(logs, t) for t in ("svhn", "usps")] == ["s0", "s2"]  # what ships
    stages = training_curves.p1_stages(REPO / "logs" / "p1" / "shipped")
    assert [n for n, _ in stages] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]
    training_curves.main(["--p1", str(REPO / "logs" / "p1" / "shipped"), "--p3", str(logs), "--out", str(tmp_path)])
    for problem in ("p1", "p3"):
        with Image.open(tmp_path / problem / "training_curve.png") as figure:
            assert figure.size == ((960, 960) if problem == "p1" else (1200, 720))
