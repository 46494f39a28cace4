"""Careless inputs, interrupts and damaged checkpoints.

* Every bad input gets one ``error:`` line, a non-zero exit and no output.
* Interrupts (SIGINT, SIGTERM) during the final moves leave the output folder as it was.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, assert_user_error, make_digit_dataset, run_module
from hw2lib import manifest
from hw2lib.checkpoints import load_file, save_checkpoint
from hw2lib.cli import UserError, run_main, signals_held
from hw2lib.digit_cnn import ClassifierConfig, DigitClassifier
from hw2lib.files import list_files, write_files_atomically
from hw2lib.images import read_rgb
from p3.predict import csv_text

# ---------------------------------------------------------------- image reading


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode.startswith("I"), image.mode  # really a 16-bit file
    rgb = read_rgb(tmp_path / "deep.png")
    assert rgb.shape == (4, 4, 3) and rgb[0, :, 0].tolist() == [0, 64, 128, 255]


def png_claiming_size(path: Path, width: int, height: int) -> None:
    """A small PNG whose header claims ``width × height`` (decoding would need gigabytes)."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("side", [20_000, 11_000])  # beyond Pillow's own bomb limit, and between its two limits
def test_oversized_image_is_refused_before_decoding(tmp_path, side):
    png_claiming_size(tmp_path / "huge.png", side, side)
    with pytest.raises(UserError, match=r"huge\.png: .*pixels"):
        read_rgb(tmp_path / "huge.png")


def test_names_differing_only_in_case_are_refused(tmp_path):
    for name in ("00.pt", "00.PT", "01.pt"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(UserError, match="00.PT and 00.pt differ only in case|00.pt and 00.PT differ only in case"):
        list_files(tmp_path, (".pt",), "noise tensors")


# ---------------------------------------------------------------- P2: bad noises end to end


@pytest.mark.slow
def test_p2_rejects_non_finite_empty_and_case_twin_noises(tmp_path):
    unet = tmp_path / "UNet.pt"
    unet.write_bytes(b"never loaded: the noises are checked first")
    out = tmp_path / "out"
    cases = {
        "nan": torch.full((1, 3, 32, 32), float("nan")),
        "inf": torch.full((1, 3, 32, 32), float("inf")),
        "empty": torch.zeros(1, 3, 0, 0),
    }
    for name, tensor in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        torch.save(tensor, folder / "00.pt")
        expected = "NaN or infinite" if name in ("nan", "inf") else "expected a float tensor"
        assert_user_error(run_module("p2.sample", folder, out, unet), str(folder / "00.pt"), expected)
    twins = tmp_path / "twins"
    twins.mkdir()
    for name in ("00.pt", "00.PT"):
        torch.save(torch.randn(1, 3, 32, 32), twins / name)
    assert_user_error(run_module("p2.sample", twins, out, unet), "differ only in case")
    assert not out.exists()


# ---------------------------------------------------------------- P3: CSV, domain, odd images


def test_csv_quotes_names_that_need_it():
    text = csv_text(["a,b.png", 'say "hi".png', "plain.png"], [1, 2, 3])
    assert text == 'image_name,label\n"a,b.png",1\n"say ""hi"".png",2\nplain.png,3\n'


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = DigitClassifier(ClassifierConfig(grayscale=True, standardize=True)).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint({"model": model.state_dict(), "config": model.config.to_dict()}, path)
    return path


@pytest.mark.parametrize(
    "script, args, code",
    [
        ("hw2_1.sh", ["afile"], 2),
        ("hw2_2.sh", ["missing", "out", "missing.pt"], 2),
        ("hw2_3.sh", ["missing", "out.csv"], 2),
        ("hw2_download.sh", ["--help"], 0),
    ],
)
def test_scripts_run_their_own_checkout_from_inside_another(tmp_path, script, args, code):
    # a decoy checkout as the working directory: ``python -m`` would import its packages first
    for package in ("p1", "p2", "p3", "hw2lib"):
        (tmp_path / package).mkdir()
        for name in ("__init__.py", "generate.py", "sample.py", "predict.py", "download.py"):
            (tmp_path / package / name).write_text("raise SystemExit('decoy imported')\n")
    (tmp_path / "afile").write_text("")
    result = subprocess.run(
        ["bash", str(REPO / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert "decoy" not in result.stdout + result.stderr
    assert result.returncode == code, result.stderr
    if code:
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, result.stderr
    else:
        assert result.stdout.startswith("usage: ")


def test_no_shell_script_starts_our_modules_with_python_m():
    # ``python -m`` puts the working directory first on sys.path (the trap the test above runs into);
    # every shell script of the repo starts p1/p2/p3/hw2lib modules through hw2lib/launch.py instead
    import re

    folders = ("bench", "recipes", "studies", "report")
    scripts = sorted([*REPO.glob("hw2_*.sh"), *(p for folder in folders for p in (REPO / folder).glob("*.sh"))])
    assert {"hw2_1.sh", "report.sh", "p3_train_all.sh", "p3_ablate.sh", "p1_time.sh"} <= {p.name for p in scripts}
    trap = re.compile(
        r"python3?\s+-m\s+[\"']?((p1|p2|p3|hw2lib|bench|recipes|studies|report)\b|\$)"
    )  # or a module in a variable
    offenders = [
        f"{p.relative_to(REPO)}:{i}"
        for p in scripts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if trap.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


@pytest.mark.slow
def test_p3_reads_the_domain_from_the_resolved_path(tmp_path, tiny_checkpoint):
    folder = make_digit_dataset(tmp_path / "usps", n=5, seed=0, mode="L", splits=("test",)) / "data"
    result = subprocess.run(
        ["bash", str(REPO / "hw2_3.sh"), ".", str(tmp_path / "out.csv")],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usps:") and len((tmp_path / "out.csv").read_text().splitlines()) == 6


@pytest.mark.slow
def test_p3_sixteen_bit_and_odd_names_end_to_end(tmp_path, tiny_checkpoint):
    folder = tmp_path / "svhn" / "test"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((28, 28), 40000, dtype=np.uint16)).save(folder / "deep,1.png")
    Image.new("RGB", (28, 28), (9, 9, 9)).save(folder / 'q"2.png')
    out = tmp_path / "out.csv"
    result = run_module("p3.predict", folder, out, "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    import csv

    rows = list(csv.reader(out.open(newline="")))
    assert [r[0] for r in rows] == ["image_name", "deep,1.png", 'q"2.png']


@pytest.mark.slow
def test_p3_oversized_image_is_one_error_line(tmp_path, tiny_checkpoint):
    folder = tmp_path / "usps"
    folder.mkdir()
    png_claiming_size(folder / "huge.png", 20_000, 20_000)
    out = tmp_path / "out.csv"
    assert_user_error(run_module("p3.predict", folder, out, "--checkpoint", tiny_checkpoint), "huge.png", "pixels")
    assert not out.exists()


# ---------------------------------------------------------------- interrupts roll back


def outputs(n: int) -> dict[str, bytes]:
    return {f"{i:02d}.png": f"new {i}".encode() for i in range(n)}


@pytest.fixture()
def default_sigint():
    """Python's own SIGINT handler for the test. A suite started in the background (``nohup … &``, many
    CI runners) inherits SIGINT *ignored*, and Python then installs no handler: the program is right to
    stay ignorant of a signal its shell told it to ignore, but these tests are about Ctrl-C."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("after", [0, 3, 7])
def test_a_signal_mid_move_leaves_the_folder_as_it_was(tmp_path, monkeypatch, default_sigint, signum, after):
    out = tmp_path / "out"
    out.mkdir()
    (out / "03.png").write_bytes(b"old 3")  # replaced by the run, so it must come back
    (out / "foreign.txt").write_bytes(b"not ours")  # never touched
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_replace, calls = os.replace, []

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == after + 1:
            os.kill(os.getpid(), signum)  # delivered now, in the middle of the moves

    monkeypatch.setattr(os, "replace", replace_then_signal)
    with pytest.raises(SystemExit) as stop:
        run_main(lambda argv: write_files_atomically(out, outputs(10)))
    assert stop.value.code == 128 + signum
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "nothing may be left beside the folder"


def test_interrupt_into_a_new_folder_removes_it(tmp_path, monkeypatch):
    out = tmp_path / "fresh"
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_files_atomically(out, outputs(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigterm_while_p1_samples_leaves_nothing(tmp_path):
    """A real hw2_1.sh process terminated while it samples: no staging folder, no output."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        ["bash", str(REPO / "hw2_1.sh"), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        seen = ""
        while "%|" not in seen and proc.poll() is None:  # the first progress bar: it is sampling now
            seen += proc.stderr.read(1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "error: interrupted by SIGTERM" in err
    assert not out.exists() and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- damaged checkpoints


def test_a_listed_checkpoint_is_verified_before_loading(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint({"model": {}, "config": {}}, path)
    entry = {"name": "x", "path": "x", "size": path.stat().st_size, "sha256": manifest.sha256(path)}
    monkeypatch.setattr(manifest, "_shipped", lambda: {path.resolve(): entry})
    assert load_file(path)["config"] == {}
    with open(path, "r+b") as handle:  # same size, one byte changed
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(UserError, match=r"model\.pt: damaged or incomplete.*hw2_download\.sh.*git checkout -- "):
        load_file(path)


@pytest.fixture()
def repo_copy(tmp_path) -> Path:
    """A copy of the repository's tracked files (the checkpoints included) to damage freely."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    copy = tmp_path / "repo"
    for name in files:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, copy / name)
    return copy


@pytest.mark.slow
def test_entry_points_stop_on_a_damaged_checkpoint(repo_copy, tmp_path):
    for name in ("p1/checkpoints/ddpm_mnistm.pt", "p3/checkpoints/usps_dann-plus.pt"):
        path = repo_copy / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a cut download
    out = tmp_path / "p1"
    assert_user_error(
        run(["bash", str(repo_copy / "hw2_1.sh"), str(out)]), "ddpm_mnistm.pt", "damaged", "hw2_download.sh"
    )
    assert not out.exists()
    folder = make_digit_dataset(tmp_path / "usps", n=3, seed=0, mode="L", splits=("test",)) / "data"
    csv_path = tmp_path / "out.csv"
    assert_user_error(run(["bash", str(repo_copy / "hw2_3.sh"), str(folder), str(csv_path)]), "usps_dann-plus.pt")
    assert not csv_path.exists()


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd="/", timeout=600)


def test_signals_held_whichever_thread_the_signal_reaches():
    """A signal that reaches another thread (torch runs worker threads) is still held back until the
    block ends, then handled as the handler in place before it would have (a per-thread mask fails)."""
    events = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: events.append("handled"))
    ready, sent = threading.Event(), threading.Event()

    def other_thread():  # started before the block, so the block cannot have changed its mask
        ready.wait()
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        sent.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    try:
        with signals_held():
            ready.set()
            sent.wait()
            worker.join()
            for _ in range(10_000):  # bytecode boundaries: where Python runs a pending handler
                pass
            events.append("block ends")
        events.append("after")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert events == ["block ends", "handled", "after"]
