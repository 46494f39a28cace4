"""A killed or overlapping run never leaves anything the grader would read (hw2lib/locks.py).

Real processes throughout: entry points killed with SIGKILL (their whole process group, as a
time-out or the out-of-memory killer would), then run again; and runs started while another one
holds the output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_outputs import digit_folder, tiny_p3_checkpoint

from conftest import REPO, assert_user_error, run_script
from hw2lib.cli import UserError
from hw2lib.files import OutputFolder, write_text_atomically
from hw2lib.locks import STAGING_PREFIX, open_locked_temp, remove_dead_temps, temp_path
from p1.generate import digit_file_names

HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
{body}
print("holding", flush=True)
time.sleep(600)
"""


def holder(body: str) -> subprocess.Popen:
    """A live process of ours that holds what ``body`` takes, until killed; returns once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(repo=str(REPO), body=body)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def start(script: str, *args) -> subprocess.Popen:
    """An entry point in its own process group (so the group can be killed like a grader's time-out)."""
    return subprocess.Popen(
        ["bash", str(REPO / script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd="/",
    )


def wait_for_progress_bar(proc: subprocess.Popen) -> None:
    seen = ""
    while "%|" not in seen:  # the first progress bar: it is sampling now, its staging folder exists
        char = proc.stderr.read(1)
        assert char, f"ended before sampling: {seen}"
        seen += char


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def staging_folders(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(STAGING_PREFIX)]


# ---------------------------------------------------------------- the locks themselves


def test_dead_temporaries_are_removed_and_live_ones_kept(tmp_path):
    dead = temp_path(tmp_path / "dead.csv")
    dead.write_text("half a file")  # a killed run's: nobody holds its lock
    live = temp_path(tmp_path / "live.csv")
    proc = holder(
        f"from hw2lib.locks import open_locked_temp\ntmp, fd = open_locked_temp(Path({str(tmp_path / 'live.csv')!r}))"
    )
    try:
        (tmp_path / "other.part").write_text("not ours")
        remove_dead_temps(tmp_path)
        assert sorted(os.listdir(tmp_path)) == sorted([live.name, "other.part"])
        with pytest.raises(UserError, match=rf"another run \(pid {proc.pid}\) is writing this file"):
            write_text_atomically(tmp_path / "live.csv", "x\n")
        assert not (tmp_path / "live.csv").exists() and live.exists()
    finally:
        proc.kill()
        proc.wait()
    write_text_atomically(tmp_path / "live.csv", "x\n")  # its owner is gone: the leftover is cleared, not counted
    assert sorted(os.listdir(tmp_path)) == ["live.csv", "other.part"]


def test_temporary_names_stay_short_for_the_longest_file_names(tmp_path):
    name = "n" * 250 + ".csv"
    assert len(temp_path(tmp_path / name).name) == len(".hw2-") + 16 + len(".part")
    tmp, fd = open_locked_temp(tmp_path / name)
    os.close(fd)
    assert tmp.exists()


def test_a_live_runs_staging_folder_is_left_alone_and_the_second_run_stops(tmp_path):
    out = tmp_path / "out"
    proc = holder(f"from hw2lib.files import OutputFolder\nf = OutputFolder(Path({str(out)!r}), ['0_001.png'])")
    try:
        (live,) = staging_folders(out)
        with pytest.raises(UserError, match=rf"another run \(pid {proc.pid}\) is writing outputs into this folder"):
            OutputFolder(out, ["0_001.png"])
        assert staging_folders(out) == [live] and os.listdir(out / live) == []
    finally:
        proc.kill()
        proc.wait()
    (out / f"{STAGING_PREFIX}old").mkdir()  # and one from a run killed long ago
    with OutputFolder(out, ["0_001.png"]) as folder:
        assert staging_folders(out) == [folder.staging.name], "the dead runs' staging folders are gone"
        folder.commit({"0_001.png": b"png"})
    assert os.listdir(out) == ["0_001.png"]


# ---------------------------------------------------------------- the entry points, killed and overlapping


@pytest.mark.slow
def test_hw2_1_killed_then_rerun_leaves_exactly_the_digits_and_a_concurrent_run_stops(tmp_path):
    out = tmp_path / "out"
    first = start("hw2_1.sh", out)
    wait_for_progress_bar(first)
    kill_group(first)
    assert len(staging_folders(out)) == 1, "SIGKILL leaves the staging folder: nothing can clean up after it"

    second = start("hw2_1.sh", out)
    wait_for_progress_bar(second)
    third = run_script("hw2_1.sh", out)  # while the second one samples
    assert_user_error(third, str(out), f"another run (pid {second.pid}) is writing outputs into this folder")
    stdout, stderr = second.communicate(timeout=900)
    assert second.returncode == 0, stderr
    assert sorted(os.listdir(out)) == sorted(digit_file_names(100)), "hidden entries included"
    assert "note:" not in stdout, "our own leftovers are not foreign files"


@pytest.mark.slow
def test_hw2_2_killed_then_rerun_leaves_exactly_the_images(tmp_path):
    from golden_unet import tame_unet

    torch.save(tame_unet().state_dict(), tmp_path / "UNet.pt")
    (tmp_path / "noise").mkdir()
    gen = torch.Generator().manual_seed(3)
    for stem in ("00", "01"):
        torch.save(torch.randn(1, 3, 64, 64, generator=gen), tmp_path / "noise" / f"{stem}.pt")
    out = tmp_path / "out"
    first = start("hw2_2.sh", tmp_path / "noise", out, tmp_path / "UNet.pt")
    wait_for_progress_bar(first)
    kill_group(first)
    assert len(staging_folders(out)) == 1
    result = run_script("hw2_2.sh", tmp_path / "noise", out, tmp_path / "UNet.pt")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == ["00.png", "01.png"]


def test_hw2_3_killed_then_rerun_adds_nothing_but_the_csv(tmp_path):
    images = digit_folder(tmp_path / "usps" / "test", n=3)
    ckpt = tiny_p3_checkpoint(tmp_path / "tiny.pt")
    results = tmp_path / "results"
    results.mkdir()
    (results / "notes.txt").write_text("someone else's")
    out_csv = results / "pred.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # hw2_3.sh's own module, stopped for good once it holds OUT_CSV's temporary file
    proc = subprocess.Popen(
        [sys.executable, "-m", "p3.predict", str(images), str(out_csv), "--checkpoint", str(ckpt)],
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not temp_path(out_csv).exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it held its temporary file"
        time.sleep(0.001)
    kill_group(proc)
    leftovers = sorted(os.listdir(results))
    assert temp_path(out_csv).name in leftovers or "pred.csv" in leftovers
    result = run_script("hw2_3.sh", images, out_csv)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(results)) == ["notes.txt", "pred.csv"]
    assert (results / "notes.txt").read_text() == "someone else's"


def test_hw2_3_stops_while_another_run_writes_the_same_csv(tmp_path):
    images = digit_folder(tmp_path / "usps" / "test", n=3)
    out_csv = tmp_path / "pred.csv"
    proc = holder(f"from hw2lib.locks import open_locked_temp\ntmp, fd = open_locked_temp(Path({str(out_csv)!r}))")
    try:
        result = run_script("hw2_3.sh", images, out_csv)
        assert_user_error(result, str(out_csv), f"another run (pid {proc.pid}) is writing this file")
        assert not out_csv.exists()
    finally:
        proc.kill()
        proc.wait()
    result = run_script("hw2_3.sh", images, out_csv)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["pred.csv", "usps"]
