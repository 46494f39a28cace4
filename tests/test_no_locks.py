"""Where ``flock`` does not work, a run still writes its outputs (hw2lib/locks.py).

Three ways locks can fail, each simulated at start-up of a real process by a ``sitecustomize``
module on PYTHONPATH: a file system that answers ``flock`` with ENOLCK (some network and FUSE
mounts), a Python without ``fcntl`` (Windows), and an error no one expects (EBADF). Each entry
point must then write exactly its outputs, print one warning line naming the output and saying
which of the three it met, and exit 0; leftovers of other runs that no lock can prove dead are
left alone and named in that warning. Where an open file cannot be renamed (Windows), the
unlocked writes still land: their temporaries are closed before the rename.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_outputs import digit_folder

from conftest import REPO, is_progress_bar, run_script
from hw2lib import locks
from hw2lib.checkpoints import save_checkpoint
from hw2lib.files import OutputFolder, write_text_atomically
from hw2lib.locks import STAGING_PREFIX, temp_path
from p1.generate import digit_file_names

FAILING_FLOCK = (
    "import errno, fcntl, os\n"
    "def flock(fd, operation):\n"
    "    raise OSError(errno.{name}, os.strerror(errno.{name}))\n"
    "fcntl.flock = flock\n"
)
SITECUSTOMIZE = {
    "enolck": FAILING_FLOCK.format(name="ENOLCK"),
    "ebadf": FAILING_FLOCK.format(name="EBADF"),
    "no-fcntl": "import sys\nsys.modules['fcntl'] = None  # import fcntl raises ImportError\n",
}
WHY = {  # what the warning says of each
    "enolck": "this file system has no file locks: ENOLCK (No locks available)",
    "ebadf": "unexpected lock error: EBADF (Bad file descriptor)",
    "no-fcntl": "this platform has no file locks: Python has no fcntl module",
}


@pytest.fixture(params=sorted(SITECUSTOMIZE))
def no_locks(request, tmp_path) -> tuple[str, dict]:
    """(mode, environment) in which every Python process starts without working locks."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE[request.param])
    return request.param, {"PYTHONPATH": str(folder)}


@pytest.fixture(params=sorted(SITECUSTOMIZE))
def unlocked(request, monkeypatch) -> str:
    """This process has no working locks, as ``SITECUSTOMIZE[mode]`` would make it; returns the mode.
    Every output is warned about afresh."""
    if request.param == "no-fcntl":
        monkeypatch.setattr(locks, "fcntl", None)
    else:
        code = errno.ENOLCK if request.param == "enolck" else errno.EBADF

        def flock(fd, operation):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(locks.fcntl, "flock", flock)
    monkeypatch.setattr(locks, "_warned", set())
    return request.param


def warnings_in(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.strip() and not is_progress_bar(line)]
    assert not any(line.startswith(("error:", "Traceback")) for line in lines), stderr
    return [line for line in lines if line.startswith("warning:")]


def assert_one_warning(stderr: str, path: Path, mode: str, leftovers: tuple[str, ...] = ()) -> None:
    (line,) = warnings_in(stderr)
    assert line.startswith(f"warning: {path}: {WHY[mode]}; writing without the guard against a concurrent run"), line
    assert ("unexpected lock error" in line) == (mode == "ebadf"), line
    for name in leftovers:
        assert name in line, line
    assert ("left alone" in line) == bool(leftovers), line


@pytest.mark.parametrize(
    "code, kind",
    [
        *[pytest.param(getattr(errno, name), "no-locks", id=name) for name in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP")],
        *[pytest.param(getattr(errno, name), "unexpected", id=name) for name in ("EBADF", "EINVAL", "EINTR", "EIO")],
        pytest.param(9999, "unexpected", id="unnamed-errno"),
    ],
)
def test_a_lockless_file_system_is_told_from_an_unexpected_lock_error(tmp_path, monkeypatch, code, kind):
    def flock(fd, operation):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(locks.fcntl, "flock", flock)
    with open(tmp_path / "f", "w") as handle, pytest.raises(locks.LocksUnavailable) as caught:
        locks.try_lock(handle.fileno())
    name = errno.errorcode.get(code, f"errno {code}")
    wording = "this file system has no file locks" if kind == "no-locks" else "unexpected lock error"
    assert (caught.value.kind, str(caught.value)) == (kind, f"{wording}: {name} ({os.strerror(code)})")


# ---------------------------------------------------------------- where an open file cannot be renamed


def open_files() -> set[str]:
    """The paths of the files this process has open now (from ``/proc/self/fd``)."""
    paths = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd, closed by now
            paths.add(os.readlink(f"/proc/self/fd/{fd}"))
    return paths


@pytest.fixture
def windows_rename(monkeypatch):
    """``os.replace`` refuses, as Windows does, to rename a file this process holds open."""
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        held = open_files()
        for p in (src, dst):
            if os.path.realpath(p) in held:
                raise PermissionError(errno.EACCES, "being used by another process", os.fspath(p))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_the_rename_simulation_refuses_open_files(tmp_path, windows_rename):
    """The simulation has teeth (else the test below would prove nothing)."""
    (tmp_path / "a").write_text("a")
    with open(tmp_path / "a"):
        with pytest.raises(PermissionError):
            os.replace(tmp_path / "a", tmp_path / "b")
    os.replace(tmp_path / "a", tmp_path / "b")
    assert os.listdir(tmp_path) == ["b"]


def test_without_locks_every_writer_works_where_open_files_cannot_be_renamed(tmp_path, unlocked, windows_rename):
    """The unlocked path closes its temporary before the rename (Windows refuses to rename an open file)."""
    write_text_atomically(tmp_path / "pred.csv", "image_name,label\n00.png,3\n")
    save_checkpoint({"step": 7}, tmp_path / "last.pt")
    with OutputFolder(tmp_path / "out", ["0_001.png", "0_002.png"]) as folder:
        folder.commit({"0_001.png": b"one", "0_002.png": b"two"})
    assert (tmp_path / "pred.csv").read_text() == "image_name,label\n00.png,3\n"
    assert torch.load(tmp_path / "last.pt", weights_only=True) == {"step": 7}
    assert {name: (tmp_path / "out" / name).read_bytes() for name in os.listdir(tmp_path / "out")} == {
        "0_001.png": b"one",
        "0_002.png": b"two",
    }
    assert sorted(os.listdir(tmp_path)) == ["last.pt", "out", "pred.csv"], "no temporary left behind"


def test_with_locks_the_temporary_stays_locked_until_it_is_in_place(tmp_path, monkeypatch):
    """Only the unlocked temporary is closed before the rename: a locked one guards the output until then."""
    real_replace, seen = os.replace, []

    def replace(src, dst, **kwargs):
        fd = os.open(src, os.O_RDONLY)  # a second open file description: its flock conflicts with ours
        try:
            seen.append(not locks.try_lock(fd))
        finally:
            os.close(fd)
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    write_text_atomically(tmp_path / "pred.csv", "image_name,label\n")
    assert seen == [True], "the temporary was not locked when it replaced the output"
    assert os.listdir(tmp_path) == ["pred.csv"]


# ---------------------------------------------------------------- the helpers, in this process


def test_output_folder_without_locks_commits_and_leaves_unprovable_staging_alone(tmp_path, unlocked, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{STAGING_PREFIX}old").mkdir()  # dead or alive: without a lock there is no telling
    with OutputFolder(out, ["0_001.png"]) as folder:
        folder.commit({"0_001.png": b"png"})
    assert sorted(os.listdir(out)) == sorted(["0_001.png", f"{STAGING_PREFIX}old"])
    assert_one_warning(capsys.readouterr().err, out, unlocked, (f"{STAGING_PREFIX}old",))


def test_a_file_without_locks_uses_a_temporary_of_its_own(tmp_path, unlocked, capsys):
    stale = temp_path(tmp_path / "pred.csv")
    stale.write_text("someone's")
    write_text_atomically(tmp_path / "pred.csv", "image_name,label\n")
    assert (tmp_path / "pred.csv").read_text() == "image_name,label\n"
    assert sorted(os.listdir(tmp_path)) == sorted(["pred.csv", stale.name]) and stale.read_text() == "someone's"
    assert_one_warning(capsys.readouterr().err, tmp_path / "pred.csv", unlocked, (stale.name,))


def test_a_trainer_saving_twice_without_locks_warns_once(tmp_path, unlocked, capsys):
    for step in (1, 2):
        save_checkpoint({"step": step}, tmp_path / "last.pt")
    assert torch.load(tmp_path / "last.pt", weights_only=True) == {"step": 2}
    assert os.listdir(tmp_path) == ["last.pt"]
    assert_one_warning(capsys.readouterr().err, tmp_path / "last.pt", unlocked)


def test_a_failed_write_without_locks_leaves_nothing(tmp_path, unlocked):
    with pytest.raises(RuntimeError):
        with OutputFolder(tmp_path / "new" / "out", ["a.png"]):
            raise RuntimeError("sampling failed")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- the entry points, in real processes


def test_hw2_3_without_locks_writes_the_whole_csv(tmp_path, no_locks):
    mode, env = no_locks
    images = digit_folder(tmp_path / "usps" / "test", n=3)
    results = tmp_path / "results"
    results.mkdir()
    stale = temp_path(results / "pred.csv")
    stale.write_text("a run's, dead or alive")
    result = run_script("hw2_3.sh", images, results / "pred.csv", env=env)
    assert result.returncode == 0, result.stderr
    rows = (results / "pred.csv").read_text().splitlines()
    assert rows[0] == "image_name,label" and [r.split(",")[0] for r in rows[1:]] == ["00.png", "01.png", "02.png"]
    assert sorted(os.listdir(results)) == sorted(["pred.csv", stale.name])
    assert_one_warning(result.stderr, results / "pred.csv", mode, (stale.name,))


@pytest.mark.slow
def test_hw2_2_without_locks_writes_every_image(tmp_path, no_locks):
    from golden_unet import tame_unet

    mode, env = no_locks
    torch.save(tame_unet().state_dict(), tmp_path / "UNet.pt")
    (tmp_path / "noise").mkdir()
    torch.save(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)), tmp_path / "noise" / "00.pt")
    out = tmp_path / "out"
    result = run_script("hw2_2.sh", tmp_path / "noise", out, tmp_path / "UNet.pt", env=env)
    assert result.returncode == 0, result.stderr
    assert os.listdir(out) == ["00.png"]
    assert_one_warning(result.stderr, out, mode)


@pytest.mark.slow
def test_hw2_1_without_locks_writes_exactly_the_digits(tmp_path, no_locks):
    mode, env = no_locks
    out = tmp_path / "out"
    result = run_script("hw2_1.sh", out, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == sorted(digit_file_names(100)), "exactly the 1000 digits, nothing hidden"
    assert_one_warning(result.stderr, out, mode)


def test_the_simulation_really_removes_locks(tmp_path, no_locks):
    """The sitecustomize is in force in a fresh interpreter (else the tests above would prove nothing)."""
    mode, env = no_locks
    probe = (
        "import os, hw2lib.locks as locks\n"
        "try:\n"
        "    locks.try_lock(os.open('.', os.O_RDONLY))\n"
        "except locks.LocksUnavailable as err:\n"
        "    print('unavailable:', err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{env['PYTHONPATH']}{os.pathsep}{REPO}"},
    )
    assert result.stdout.strip() == f"unavailable: {WHY[mode]}", result.stderr
