"""bench/p1_train_all.sh is the shipped model's recipe: its first leg, replayed, repeats the first stage's log."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import REPO, run, shared_file

RECIPE = REPO / "bench" / "p1_train_all.sh"
STAGE1_LOG = REPO / "p1" / "checkpoints" / "ddpm_mnistm.stage1.metrics.jsonl"


def legs() -> list[tuple[str, int, int, str]]:
    """(run, until step, --steps, the rest of the line) for every ``leg`` line of the recipe, in order."""
    found = re.findall(r"^leg (\S+) (\d+) (\d+)(.*)$", RECIPE.read_text(), flags=re.M)
    return [(name, int(until), int(steps), rest.strip()) for name, until, steps, rest in found]


def test_the_recipe_names_the_whole_lineage_and_ends_in_the_shipped_files():
    text = RECIPE.read_text()
    assert [name for name, *_ in legs()] == (
        ["p1"] * 3
        + ["p1_ft"]
        + ["p1_snr"] * 3
        + ["p1_s4"] * 3
        + ["p1_s5"] * 2
        + ["p1_s6"] * 2
        + ["p1_s7", "p1_s8", "p1_s9", "p1_s11", "p1_s11", "p1_s12", "p1_s13"]
    )
    for name, until, steps, _ in legs():
        assert until <= steps, name  # a leg never runs past its own schedule
    assert 'p1.grow "$R/p1_s9/best.pt" "$R/grown4.pt" --mid-blocks 4' in text
    assert 'cp "$R/p1_s13/best.pt" "$HERE/p1/checkpoints/ddpm_mnistm.pt"' in text
    assert 'cp "$R/features_mnistm/best.pt" "$HERE/p1/checkpoints/features_mnistm.pt"' in text


PEAK_AND_WARMUP = {"p1": (8e-4, 200), "p1_ft": (4e-4, 100), "p1_snr": (4e-4, 100), "p1_s9": (3e-4, 100)}
PEAK_AND_WARMUP |= {f"p1_s{i}": (4e-4, 100) for i in range(4, 9)}
PEAK_AND_WARMUP |= {"p1_s11": (3e-4, 100), "p1_s12": (3e-4, 100), "p1_s13": (2e-4, 100)}


def test_every_stage_logs_the_schedule_its_legs_replay():
    """Each logged learning rate is the one the recipe's leg for that step gives (warm-up, then cosine)."""
    import math

    stages = [*range(4, 10), 11, 12, 13]
    logs = {f"p1_s{i}": REPO / "p1" / "checkpoints" / f"ddpm_mnistm.stage{i}.metrics.jsonl" for i in stages}
    logs |= {"p1": STAGE1_LOG, "p1_ft": REPO / "p1" / "checkpoints" / "ddpm_mnistm.stage2.metrics.jsonl"}
    logs["p1_snr"] = REPO / "p1" / "checkpoints" / "ddpm_mnistm.stage3.metrics.jsonl"
    for name, path in logs.items():
        mine = [(until, steps, rest) for n, until, steps, rest in legs() if n == name]
        peak, warmup = PEAK_AND_WARMUP[name]
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        last = {}
        for row in rows:  # a resumed sitting may log a step twice: the later line is the one that ran on
            last[row["step"]] = row["lr"]
        for step, lr in last.items():
            until, steps, _ = next(leg for leg in mine if step <= leg[0])
            s = step - 1  # the rate logged with step N is the one step N − 1 used
            want = (
                peak * (s + 1) / warmup
                if s < warmup
                else peak * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup)))
            )
            assert lr == pytest.approx(want, rel=1e-6), (name, step)


@pytest.mark.slow
def test_replaying_the_first_leg_repeats_stage_1s_first_logged_loss(tmp_path):
    tarball = shared_file("data", "hw2_digits.tar.gz")
    subprocess.run(["tar", "xzf", str(tarball), "-C", str(tmp_path), "hw2_data/digits/mnistm"], check=True)
    name, until, steps, rest = legs()[0]
    assert (name, rest) == ("p1", ""), "stage 1 runs on p1.train's defaults"
    result = run(
        [sys.executable, REPO / "hw2lib" / "launch.py", "p1.train", "--data-root", tmp_path / "hw2_data/digits/mnistm"]
        + ["--out-dir", tmp_path / "run", "--steps", steps, "--stop-after", 50],
    )
    assert result.returncode == 0, result.stderr
    replayed = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    logged = json.loads(STAGE1_LOG.read_text().splitlines()[0])
    assert replayed["step"] == logged["step"] == 50 and replayed["lr"] == logged["lr"]
    assert replayed["loss"] == pytest.approx(logged["loss"], rel=1e-3)  # 0.94232; another CPU's last bits aside
