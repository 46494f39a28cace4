"""Run records (hw2lib/run_record.py): one line per sitting, and resuming with other arguments refused."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, assert_user_error, make_digit_dataset, run_module
from hw2lib.run_record import SITTING_ARGS, append_sitting, changed_args, read_record, training_args

FLAGS = ("--steps", "4", "--batch-size", "8", "--eval-every", "2", "--width", "8", "--device", "cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("digits")
    return make_digit_dataset(root / "mnistm", n=20, seed=2), make_digit_dataset(root / "usps", n=20, seed=3, mode="L")


def train(data, out: Path, *extra: str):
    source, target = data
    return run_module("p3.train", "--source", source, "--target", target, "--out-dir", out, *FLAGS, *extra)


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


@pytest.mark.slow
def test_every_sitting_appends_its_arguments_commit_start_and_machine(data, tmp_path):
    out = tmp_path / "run"
    assert train(data, out, "--stop-after", "2").returncode == 0
    assert train(data, out).returncode == 0
    first, second = read_record(out)
    assert [first["sitting"], second["sitting"]] == [1, 2] and [first["step"], second["step"]] == [0, 2]
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert first["commit"] == second["commit"] == head and isinstance(first["dirty"], bool)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", first["started"])
    assert {"host", "cpu", "cores", "torch"} <= set(first["machine"])
    assert first["args"]["stop_after"] == 2 and second["args"]["stop_after"] is None
    assert first["args"]["target"] == str(data[1]) and first["args"]["lr"] == 0.01
    assert "changed" not in second and not (out / "args.json").exists()
    finished = snapshot(out)
    again = train(data, out)  # started again once finished: trains nothing, so no sitting is recorded
    assert again.returncode == 0 and snapshot(out) == finished


@pytest.mark.slow
def test_resuming_with_other_training_arguments_is_refused_and_touches_nothing(data, tmp_path):
    out = tmp_path / "run"
    assert train(data, out, "--stop-after", "2").returncode == 0
    before = snapshot(out)
    refused = train(data, out, "--lr", "0.5", "--seed", "3")
    assert_user_error(refused, str(out), "--lr 0.01 → 0.5", "--seed 0 → 3", "--allow-changed-args")
    assert snapshot(out) == before  # record, log, last.pt and best.pt as they were


@pytest.mark.slow
def test_a_change_asked_for_is_recorded_and_the_next_sitting_is_held_to_it(data, tmp_path):
    out = tmp_path / "run"
    assert train(data, out, "--stop-after", "1").returncode == 0
    assert train(data, out, "--lr", "0.5", "--allow-changed-args", "--stop-after", "1").returncode == 0
    first, second = read_record(out)
    assert second["changed"] == {"lr": [0.01, 0.5]} and second["args"]["lr"] == 0.5 and second["step"] == 1
    assert_user_error(train(data, out), "--lr 0.5 → 0.01")  # compared with the last sitting, not the first
    assert train(data, out, "--lr", "0.5").returncode == 0


@pytest.mark.slow
def test_a_run_from_before_records_resumes_with_its_command(data, tmp_path):
    """A run that logged only args.json, before flags that exist now: the same command resumes it (a
    missing flag counts as its default) and the record starts with the converted line."""
    out = tmp_path / "run"
    assert train(data, out, "--stop-after", "2").returncode == 0
    old = read_record(out)[0]["args"]
    del old["target_entropy"], old["allow_changed_args"]  # flags its trainer did not have yet
    (out / "record.jsonl").unlink()
    (out / "args.json").write_text(json.dumps(old))
    assert_user_error(train(data, out, "--target-entropy", "0.1"), "--target-entropy 0.0 → 0.1")
    assert train(data, out).returncode == 0
    first, second = read_record(out)
    assert first["converted_from"] == "args.json" and second["step"] == 2 and "changed" not in second


def test_every_flag_that_shapes_training_is_compared():
    from p1 import train as p1_train
    from p3 import refine, train

    for parser in (train.build_parser(), refine.build_parser(), p1_train.build_parser()):
        flags = {a.dest for a in parser._actions if a.dest != "help"}
        assert set(training_args(dict.fromkeys(flags))) == flags - set(SITTING_ARGS)
        assert "allow_changed_args" in flags  # every trainer can record a change it was asked for
    sitting = {"out_dir", "device", "stop_after", "allow_changed_args", "save_every", "log_every"}
    assert set(SITTING_ARGS) == sitting  # not seed, lr, steps, eval_every (picks best.pt), data, …


def test_where_and_how_far_a_sitting_runs_may_change():
    base = {"lr": 0.01, "out_dir": "/a", "device": "auto", "stop_after": 2, "allow_changed_args": False}
    moved = {**base, "out_dir": "/b", "device": "cuda", "stop_after": None, "allow_changed_args": True}
    assert changed_args(base, moved) == {}
    assert changed_args(base, {**base, "consistency": 1.0}) == {"consistency": [None, 1.0]}  # a new flag counts


def test_a_run_from_before_records_reads_as_one_converted_sitting(tmp_path):
    (tmp_path / "args.json").write_text(json.dumps({"lr": 0.01, "seed": 0}))
    assert read_record(tmp_path) == [{"sitting": 1, "args": {"lr": 0.01, "seed": 0}, "converted_from": "args.json"}]
    append_sitting(tmp_path, {"lr": 0.01, "seed": 0}, step=250, changed={})
    lines = [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert [line["sitting"] for line in lines] == [1, 2] and lines[0]["converted_from"] == "args.json"
    assert lines[1]["step"] == 250 and read_record(tmp_path) == lines


def test_a_sitting_that_starts_at_the_runs_end_is_not_recorded(tmp_path):
    assert append_sitting(tmp_path, {"steps": 4, "lr": 0.01}, step=4, changed={}) is None
    assert not (tmp_path / "record.jsonl").exists()
    assert append_sitting(tmp_path, {"steps": 4, "lr": 0.01}, step=3, changed={})["step"] == 3
    assert append_sitting(tmp_path, {"steps": 6, "lr": 0.01}, step=4, changed={"steps": [4, 6]})["sitting"] == 2
