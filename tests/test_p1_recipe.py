"""recipes/p1_train_all.sh is the shipped model's recipe: its first leg, replayed, repeats the first stage's log."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run, shared_file

RECIPE = REPO / "recipes" / "p1_train_all.sh"
STAGE1_LOG = REPO / "logs" / "p1" / "shipped" / "ddpm_mnistm.stage1.metrics.jsonl"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> list[list[str]]:
    """Every command the recipe runs, in order, as it prints them (P1_PRINT_ONLY=1, empty RUNS)."""
    data = tmp_path_factory.mktemp("data")
    (data / "mnistm").mkdir()
    (data / "Classifier.pth").write_bytes(b"")
    printed = run(["bash", RECIPE, data, "/R", data / "Classifier.pth"], env={"P1_PRINT_ONLY": "1"})
    assert printed.returncode == 0, printed.stderr
    return [line.split() for line in printed.stdout.splitlines()]


def legs(commands: list[list[str]]) -> list[tuple[str, int, argparse.Namespace]]:
    """(run, until step, the p1.train arguments) of every p1.train command, parsed by p1.train's parser."""
    from p1.train import build_parser

    found = []
    for command in commands:
        if command[2:3] == ["p1.train"]:
            args = build_parser().parse_args(command[3:])
            found.append((Path(args.out_dir).name, args.stop_after or args.steps, args))
    return found


def test_the_recipe_names_the_whole_lineage_and_ends_in_the_shipped_files(recipe):
    assert [name for name, *_ in legs(recipe)] == (
        ["p1"] * 3
        + ["p1_ft"]
        + ["p1_snr"] * 3
        + ["p1_s4"] * 3
        + ["p1_s5"] * 2
        + ["p1_s6"] * 2
        + ["p1_s7", "p1_s8", "p1_s9", "p1_s11", "p1_s11", "p1_s12", "p1_s13"]
    )
    for name, until, args in legs(recipe):
        assert until <= args.steps, name  # a leg never runs past its own schedule
    lines = [" ".join(c) for c in recipe]
    assert any(line.endswith("p1.grow /R/p1_s9/best.pt /R/grown4.pt --mid-blocks 4") for line in lines)
    assert f"cp /R/p1_s13/best.pt {REPO}/p1/checkpoints/ddpm_mnistm.pt" in lines
    assert f"cp /R/features_mnistm/best.pt {REPO}/p1/checkpoints/features_mnistm.pt" in lines


def test_a_leg_that_changes_its_runs_schedule_says_so_and_no_other_does(recipe):
    """p1.train refuses to resume a run with other training arguments (record.jsonl); the legs that
    replay a lengthened or shortened schedule pass --allow-changed-args, so the change is recorded."""
    previous = {}
    for name, _, args in legs(recipe):
        new_schedule = name in previous and previous[name] != args.steps
        assert args.allow_changed_args == new_schedule, (name, args.steps)
        previous[name] = args.steps
    assert sum(args.allow_changed_args for *_, args in legs(recipe)) == 9


def test_every_stage_logs_the_schedule_its_legs_replay(recipe):
    """Each logged learning rate is the one the recipe's leg for that step gives (warm-up to the leg's
    --lr over its --warmup, then cosine over its --steps), every flag read from the script itself."""
    import math

    stages = {"p1": 1, "p1_ft": 2, "p1_snr": 3} | {f"p1_s{i}": i for i in (*range(4, 10), 11, 12, 13)}
    for name, stage in stages.items():
        mine = [(until, args) for n, until, args in legs(recipe) if n == name]
        path = REPO / "logs" / "p1" / "shipped" / f"ddpm_mnistm.stage{stage}.metrics.jsonl"
        last = {}
        for row in map(json.loads, path.read_text().splitlines()):  # a resumed sitting may log a step twice:
            last[row["step"]] = row["lr"]  # the later line is the one that ran on
        for step, lr in last.items():
            until, args = next(leg for leg in mine if step <= leg[0])
            s = step - 1  # the rate logged with step N is the one step N − 1 used
            peak, warmup = args.lr, args.warmup
            want = (
                peak * (s + 1) / warmup
                if s < warmup
                else peak * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (args.steps - warmup)))
            )
            assert lr == pytest.approx(want, rel=1e-6), (name, step)


@pytest.mark.slow
def test_replaying_the_first_leg_repeats_stage_1s_first_logged_loss(tmp_path, recipe):
    tarball = shared_file("data", "hw2_digits.tar.gz")
    subprocess.run(["tar", "xzf", str(tarball), "-C", str(tmp_path), "hw2_data/digits/mnistm"], check=True)
    name, until, args = legs(recipe)[0]
    assert name == "p1" and recipe[0][5:] == ["--out-dir", "/R/p1", "--steps", str(args.steps), "--stop-after", "250"]
    steps = args.steps  # stage 1 runs on p1.train's defaults: nothing else on its command line
    result = run(
        [sys.executable, REPO / "hw2lib" / "launch.py", "p1.train", "--data-root", tmp_path / "hw2_data/digits/mnistm"]
        + ["--out-dir", tmp_path / "run", "--steps", steps, "--stop-after", 50],
    )
    assert result.returncode == 0, result.stderr
    replayed = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    logged = json.loads(STAGE1_LOG.read_text().splitlines()[0])
    assert replayed["step"] == logged["step"] == 50 and replayed["lr"] == logged["lr"]
    assert replayed["loss"] == pytest.approx(logged["loss"], rel=1e-3)  # 0.94232; another CPU's last bits aside
