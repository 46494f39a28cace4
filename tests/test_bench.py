"""The prepared GPU scripts (bench/gpu_check.py, recipes/gpu_train.sh), run on the CPU: every check runs and
the reports have their shape."""

import json
import re
import subprocess
import sys

import pytest
import torch

from conftest import REPO, make_digit_dataset, run, shared_file


@pytest.mark.slow
def test_gpu_check_report_on_cpu(tmp_path):
    classifier = shared_file("evaluator", "Classifier.pth")
    digits = tmp_path / "digits"
    make_digit_dataset(digits / "mnistm", n=130, seed=0)
    make_digit_dataset(digits / "usps", n=20, seed=1, mode="L")
    make_digit_dataset(digits / "svhn", n=20, seed=2)
    out = tmp_path / "report"
    result = run(
        [
            sys.executable,
            str(REPO / "bench" / "gpu_check.py"),
            *("--digits", digits, "--classifier", classifier, "--out", out, "--device", "cpu"),
            *("--p1-per-class", "1", "--p2-size", "32", "--p2-noises", "1", "--p2-memory-size", "32"),
            *("--p2-memory-steps", "1", "--train-steps", "1", "--no-bash"),
        ]
    )
    report = (out / "report.md").read_text().splitlines()
    assert report[0] == "# GPU check" and "| check | seconds | peak MB | result | ok |" in report
    rows = [line for line in report if line.startswith("| ") and not line.startswith("| check")]
    checks = [row.split(" | ")[0].lstrip("| ") for row in rows]
    assert checks == [
        "P1 hw2_1.sh generator on cpu",
        "P1 hw2_1.sh generator on cpu",
        "P1 device vs CPU",
        "P2 default batch (10 × 32²), 1 DDIM steps",
        "P2 hw2_2.sh sampler on cpu (1 × 32²)",
        "P2 hw2_2.sh sampler on cpu (1 × 32²)",
        "P2 device vs CPU",
        "P3 hw2_3.sh usps val on cpu",
        "P3 hw2_3.sh usps val on cpu",
        "P3 usps device vs CPU",
        "P3 hw2_3.sh svhn val on cpu",
        "P3 hw2_3.sh svhn val on cpu",
        "P3 svhn device vs CPU",
        "P1 p1.train, 1 steps",
        "P3 p3.train, 1 steps",
    ]
    # every row's verdict is computed from its own measurement: on these bar images the shipped P3
    # models score below the course's baselines, so those rows (and the run) must fail, and only those
    labelled = [row for row in rows if " val on cpu " in row]
    for row in labelled:
        accuracy = float(re.search(r"accuracy ([\d.]+) %", row).group(1)) / 100
        baseline = 0.76 if "usps" in row else 0.40
        assert row.endswith("| yes |") == (accuracy >= baseline), row
    others = [row for row in rows if row not in labelled]
    assert all(row.endswith("| yes |") for row in others), others
    assert result.returncode == (0 if all(row.endswith("| yes |") for row in labelled) else 1), result.stderr[-3000:]
    assert "100.0 % identical PNGs" in rows[2] and "MSE 0.0000" in rows[6] and "| 0 of 20 labels differ" in rows[9]
    assert "reached step 1, last loss" in rows[13] and "reached step 1, last loss" in rows[14]


def test_gpu_check_reads_the_device_an_entry_point_reports():
    import gpu_probe

    assert gpu_probe.reported_device("sampling: 100%|###| 10/10\nwrote…\ndevice: cuda:0\n") == "cuda:0"
    assert gpu_probe.reported_device("error: something\n") == "?"


def test_gpu_train_help_and_usage():
    result = run(["bash", REPO / "recipes" / "gpu_train.sh", "--help"])
    assert result.returncode == 0 and result.stdout.startswith("One call for a lent GPU")
    assert "Usage: bash recipes/gpu_train.sh DIGITS_DIR CLASSIFIER_PTH OUT_DIR MINUTES" in result.stdout
    result = run(["bash", REPO / "recipes" / "gpu_train.sh", "only", "two"])
    assert result.returncode == 2 and "Usage:" in result.stderr


@pytest.mark.slow
def test_gpu_train_on_the_cpu_with_a_tiny_budget(tmp_path):
    """The one-call GPU script end to end on the CPU: check, calibration, a run sized to the budget, the files."""
    classifier = shared_file("evaluator", "Classifier.pth")
    tarball = shared_file("data", "hw2_digits.tar.gz")
    subprocess.run(["tar", "xzf", str(tarball), "-C", str(tmp_path), "hw2_data/digits/mnistm"], check=True)
    digits = tmp_path / "hw2_data" / "digits"
    for split, rows in (("train", 256), ("val", 2000)):  # real digits: the monitor scores against them
        csv = digits / "mnistm" / f"{split}.csv"
        csv.write_text("\n".join(csv.read_text().splitlines()[: rows + 1]) + "\n")
    make_digit_dataset(digits / "usps", n=20, seed=1, mode="L")
    make_digit_dataset(digits / "svhn", n=20, seed=2)
    out = tmp_path / "out"
    check = "--device cpu --p1-per-class 1 --p2-size 32 --p2-noises 1 --p2-memory-size 32 --p2-memory-steps 1"
    result = run(
        ["bash", REPO / "recipes" / "gpu_train.sh", digits, classifier, out, "0.05"]
        + ["--channels", "16", "32", "--mid-blocks", "1", "--batch-size", "8", "--device", "cpu", "--no-bf16"],
        env={
            "GPU_CHECK_FLAGS": check + " --train-steps 1 --no-bash",
            "GPU_TRAIN_FLAGS": "--eval-per-class 2 --calibrate 8",
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "check" / "report.md").read_text().startswith("# GPU check")
    assert sorted(p.name for p in (out / "p1").iterdir()) == [
        "best.pt",
        "budget.json",
        "metrics.jsonl",
        "model.pt",
        "record.jsonl",
        "report.md",
    ]
    budget = json.loads((out / "p1" / "budget.json").read_text())
    assert budget["steps"] == 2  # 3 s hold no more than the minimum
    (sitting,) = [json.loads(line) for line in (out / "p1" / "record.jsonl").read_text().splitlines()]
    args = sitting["args"]
    assert args["channels"] == [16, 32] and args["batch_size"] == 8 and args["min_snr_gamma"] == 5.0
    assert not args["bf16"] and args["steps"] == 2 and args["eval_every"] == 1
    report = (out / "p1" / "report.md").read_text()
    assert "→ 2 steps" in report and "\n| 1 | " in report and "\n| 2 | " in report
    model = torch.load(out / "p1" / "model.pt", weights_only=True)
    assert model["config"]["channels"] == [16, 32] and next(iter(model["model"].values())).dtype == torch.float16
