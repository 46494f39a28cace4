"""Outputs land wherever the grader points them, nothing that is not ours is touched, and every
careless path, image or noise is one ``error:`` line.

Mount points and read-only parents use real tmpfs mounts where this machine allows them (root in a
container that may mount); elsewhere those cases skip with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import REPO, assert_user_error, run_module, run_script
from hw2lib.cli import UserError
from hw2lib.files import STAGING_PREFIX, OutputFolder, write_files_atomically, write_text_atomically

# ---------------------------------------------------------------- helpers


def files(n: int = 3) -> dict[str, bytes]:
    return {f"{i}_00{i}.png": f"data {i}".encode() for i in range(n)}


@contextlib.contextmanager
def tmpfs(path: Path, read_only: bool = False):
    """A fresh tmpfs mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def tiny_p3_checkpoint(path: Path) -> Path:
    from hw2lib.checkpoints import save_checkpoint
    from hw2lib.digit_cnn import ClassifierConfig, DigitClassifier

    torch.manual_seed(0)
    model = DigitClassifier(ClassifierConfig(grayscale=True, standardize=True, width=8)).eval()
    save_checkpoint({"model": model.state_dict(), "config": model.config.to_dict()}, path)
    return path


def digit_folder(path: Path, n: int = 3) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("L", (28, 28), 40 * i).save(path / f"{i:02d}.png")
    return path


@pytest.fixture(scope="module")
def p3_ckpt(tmp_path_factory) -> Path:
    return tiny_p3_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


# ---------------------------------------------------------------- where outputs may land


def test_out_dir_that_is_a_mount_point(tmp_path):
    with tmpfs(tmp_path / "mnt") as out:
        write_files_atomically(out, files())
        assert sorted(p.name for p in out.iterdir()) == sorted(files())


def test_staging_never_crosses_the_out_dir_boundary(tmp_path, monkeypatch):
    """Where mounts are not allowed: an ``os.replace`` that fails with EXDEV across OUT_DIR's edge."""
    out = tmp_path / "out"
    out.mkdir()
    real_replace = os.replace

    def replace_within(src, dst):
        if Path(src).resolve().parent.parent != out.resolve() and Path(src).resolve().parent != out.resolve():
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_within)
    write_files_atomically(out, files())
    assert sorted(p.name for p in out.iterdir()) == sorted(files())


def test_writable_out_dir_inside_a_read_only_parent(tmp_path):
    with tmpfs(tmp_path / "parent") as parent:
        (parent / "out").mkdir()
        with tmpfs(parent / "out") as out:
            remount_read_only(parent)
            write_files_atomically(out, files())
            assert sorted(p.name for p in out.iterdir()) == sorted(files())
            with pytest.raises(UserError, match="cannot write the outputs here"):
                OutputFolder(parent / "new", ["a.png"])  # and an unwritable place is said so, up front


def test_unwritable_out_dir_is_refused_before_any_work(tmp_path):
    with tmpfs(tmp_path / "ro") as ro:
        remount_read_only(ro)
        result = run_script("hw2_1.sh", ro / "digits")
        assert_user_error(result, str(ro / "digits"), "cannot write")
        assert "%|" not in result.stderr, "it sampled before finding out"


def test_a_folder_named_like_an_output_is_never_touched(tmp_path):
    out = tmp_path / "out"
    (out / "0_001.png").mkdir(parents=True)
    (out / "0_001.png" / "notes.txt").write_text("mine")
    result = run_script("hw2_1.sh", out)
    assert_user_error(result, "0_001.png", "not a regular file")
    assert "%|" not in result.stderr, "refused only after sampling"
    assert (out / "0_001.png" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["0_001.png"]


def test_a_symlink_named_like_an_output_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere.png").write_bytes(b"keep")
    (out / "1_001.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(UserError, match="not a regular file"):
        write_files_atomically(out, files())
    assert (out / "1_001.png").is_symlink() and (tmp_path / "elsewhere.png").read_bytes() == b"keep"


@pytest.mark.parametrize("script, args", [("hw2_1.sh", [""]), ("hw2_3.sh", ["", "/tmp/x_usps.csv"])])
def test_an_empty_path_argument_is_refused(script, args, tmp_path):
    result = subprocess.run(["bash", str(REPO / script), *args], capture_output=True, text=True, cwd=tmp_path)
    assert_user_error(result, "empty path")
    assert list(tmp_path.iterdir()) == []


def test_a_path_starting_with_a_dash_is_a_path(tmp_path, p3_ckpt):
    folder = digit_folder(tmp_path / "-usps")
    result = subprocess.run(
        [sys.executable, "-m", "p3.predict", "--checkpoint", str(p3_ckpt), "--", "-usps", "-out.csv"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "-out.csv").read_text().splitlines()[0] == "image_name,label"
    assert folder.exists()


def test_folders_created_for_a_failed_run_are_removed(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    with pytest.raises(RuntimeError):
        with OutputFolder(target, ["x.png"]):
            raise RuntimeError("sampling failed")
    assert list(tmp_path.iterdir()) == []
    with OutputFolder(target, ["x.png"]) as out:  # and kept after a successful one
        out.commit({"x.png": b"1"})
    assert (target / "x.png").read_bytes() == b"1" and not list(target.glob(STAGING_PREFIX + "*"))


def test_long_folder_and_file_names_fit(tmp_path):
    folder = tmp_path / ("d" * 250)
    write_files_atomically(folder, files())
    assert len(list(folder.iterdir())) == 3
    csv = tmp_path / ("c" * 251 + ".csv")
    write_text_atomically(csv, "image_name,label\n")
    assert csv.read_text() == "image_name,label\n"


def test_too_long_names_are_one_error_line(tmp_path, p3_ckpt):
    long = "x" * 300
    folder = digit_folder(tmp_path / "usps")
    assert_user_error(run_module("p3.predict", folder, tmp_path / f"{long}.csv", "--checkpoint", p3_ckpt), long)
    assert_user_error(run_module("p3.predict", tmp_path / f"usps{long}", tmp_path / "o.csv"), long)
    assert_user_error(run_script("hw2_1.sh", tmp_path / long), long)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["usps"]


def test_symlink_loops_are_one_error_line(tmp_path, p3_ckpt):
    loop = tmp_path / "usps_loop"
    loop.symlink_to(loop)
    assert_user_error(run_module("p3.predict", loop, tmp_path / "o.csv", "--checkpoint", p3_ckpt), "usps_loop")
    assert_user_error(run_script("hw2_1.sh", loop / "out"), "usps_loop")


# ---------------------------------------------------------------- P3's CSV: modes, links, devices


def test_csv_mode_follows_the_umask_and_keeps_an_old_files_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "new.csv", "a\n")
        assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644
        os.umask(0o077)
        write_text_atomically(tmp_path / "private.csv", "a\n")
        assert stat.S_IMODE((tmp_path / "private.csv").stat().st_mode) == 0o600
        (tmp_path / "new.csv").chmod(0o664)
        write_text_atomically(tmp_path / "new.csv", "b\n")
        assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o664
    finally:
        os.umask(old)


def test_a_symlinked_csv_is_written_through_to_its_target(tmp_path):
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    write_text_atomically(tmp_path / "link.csv", "new\n")
    assert (tmp_path / "link.csv").is_symlink() and (tmp_path / "real.csv").read_text() == "new\n"


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_a_device_or_fifo_as_out_csv_is_refused_untouched(tmp_path, kind, p3_ckpt):
    target = tmp_path / "out.csv"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        try:
            os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("mknod needs privileges this machine does not give")
    before = os.lstat(target)
    folder = digit_folder(tmp_path / "usps")
    assert_user_error(
        run_module("p3.predict", folder, target, "--checkpoint", p3_ckpt), "out.csv", "not a regular file"
    )
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)


def test_undecodable_file_names_round_trip_into_the_csv(tmp_path, p3_ckpt):
    folder = digit_folder(tmp_path / "usps", n=1)
    raw = b"caf\xe9.png"  # Latin-1, not UTF-8
    os.rename(os.fsencode(folder / "00.png"), os.path.join(os.fsencode(folder), raw))
    out = tmp_path / "out.csv"
    for env in ({}, {"LC_ALL": "C"}):
        result = subprocess.run(
            [sys.executable, "-m", "p3.predict", str(folder), str(out), "--checkpoint", str(p3_ckpt)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
        )
        assert result.returncode == 0, result.stderr
        assert out.read_bytes().splitlines()[1].startswith(raw + b",")


def test_a_closed_stdout_is_not_an_error(tmp_path, p3_ckpt):
    folder = digit_folder(tmp_path / "usps")
    out = tmp_path / "out.csv"
    command = f"'{sys.executable}' -m p3.predict '{folder}' '{out}' --checkpoint '{p3_ckpt}' | true"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0 and "Error" not in result.stderr, result.stderr
    assert len(out.read_text().splitlines()) == 4


def test_download_manifest_that_is_a_folder(tmp_path):
    assert_user_error(run_script("hw2_download.sh", "--manifest", tmp_path), str(tmp_path), "is a directory")
