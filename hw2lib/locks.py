"""Which of our temporary files and staging folders belong to a live run, and one run per output.

A run that writes outputs holds an exclusive ``flock`` for as long as it lives:

* on the output **folder** itself (P1's and P2's OUT_DIR) while its hidden staging folder
  ``.hw2-staging-…`` exists there;
* on its **temporary file** ``.hw2-<hash of the output's name>.part`` beside an output file (P3's
  CSV, checkpoints), the one name every run writing that output uses.

The kernel drops a lock when its process dies, however it dies (SIGKILL, out of memory), so a lock
that can be taken is proof that no live run owns what it guards: such leftovers are removed before
a run writes. A lock that cannot be taken means another run is writing the same output right now:
this run stops at once with one error line naming it (its pid, from ``/proc/locks``), before doing
any work, and touches nothing of the other run's. Two runs never interleave their moves.

Where ``flock`` fails in any other way the guard is a luxury the run does without: it prints one
warning line naming the output and why (:class:`LocksUnavailable`: no ``fcntl``, as on Windows; a
file system that answers ENOLCK or EOPNOTSUPP, as some network and FUSE mounts do; or any other
error, named as unexpected), writes through a temporary of its own, closed before it is moved into
place all at once (Windows cannot rename an open file), and leaves alone every leftover it cannot
prove dead, naming them in that warning.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from .cli import UserError

try:
    import fcntl
except ImportError:  # no flock on this platform (Windows without WSL)
    fcntl = None

TEMP_PREFIX, TEMP_SUFFIX = ".hw2-", ".part"
STAGING_PREFIX = ".hw2-staging-"  # hidden folder inside OUT_DIR that holds the outputs until they all exist
LOCK_RETRIES = 10  # × 50 ms


def lock_holder(fd: int) -> Optional[int]:
    """The pid holding a flock on the file open as ``fd`` (read from ``/proc/locks``), when known."""
    st = os.fstat(fd)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == inode and fields[4].isdigit():
                return int(fields[4])
    return None


# flock's answers that mean "this file system has no locks" (ENOTSUP is EOPNOTSUPP on Linux, not everywhere)
NO_LOCKS_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP") if hasattr(errno, name)
)


class LocksUnavailable(Exception):
    """``flock`` cannot be used here. ``kind`` says why, ``detail`` names it, and ``str()`` is the
    wording of the warning (:data:`WORDING`):

    * ``"no-fcntl"``: this Python has no ``fcntl`` module (Windows);
    * ``"no-locks"``: the file system answers ``flock`` with one of :data:`NO_LOCKS_ERRNOS`;
    * ``"unexpected"``: ``flock`` failed with any other error (EBADF, EINVAL, EIO, …).
    """

    WORDING = {
        "no-fcntl": "this platform has no file locks: {detail}",
        "no-locks": "this file system has no file locks: {detail}",
        "unexpected": "unexpected lock error: {detail}",
    }

    def __init__(self, kind: str, detail: str):
        if kind not in self.WORDING:
            raise ValueError(f"unknown kind of LocksUnavailable: {kind!r}")
        super().__init__(kind, detail)
        self.kind, self.detail = kind, detail

    @classmethod
    def no_fcntl(cls) -> LocksUnavailable:
        return cls("no-fcntl", "Python has no fcntl module")

    @classmethod
    def from_error(cls, err: OSError) -> LocksUnavailable:
        """What ``flock``'s ``err`` (not EWOULDBLOCK: that is a holder, not a missing lock) means."""
        if err.errno is None:
            return cls("unexpected", str(err) or type(err).__name__)
        name = errno.errorcode.get(err.errno, f"errno {err.errno}")
        detail = f"{name} ({err.strerror or os.strerror(err.errno)})"
        return cls("no-locks" if err.errno in NO_LOCKS_ERRNOS else "unexpected", detail)

    def __str__(self) -> str:
        return self.WORDING[self.kind].format(detail=self.detail)


def try_lock(fd: int) -> bool:
    """Take an exclusive flock on ``fd`` without waiting; False when another process holds one.
    :class:`LocksUnavailable` on any other failure, or where this platform has no flock."""
    if fcntl is None:
        raise LocksUnavailable.no_fcntl()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise LocksUnavailable.from_error(err) from None


_warned: set[Path] = set()  # outputs already warned about in this process (a trainer saves many times)


def warn_unlocked(path: Path, why: LocksUnavailable, leftovers: list[str]) -> None:
    """One warning line on stderr (once per output and process): no lock guards ``path``, ``why``
    (its wording is :class:`LocksUnavailable`'s); the ``leftovers`` of other runs beside it were
    left alone."""
    if path in _warned:
        return
    _warned.add(path)
    line = f"warning: {path}: {why}; writing without the guard against a concurrent run"
    if leftovers:
        line += f"; left alone, as no lock can tell whether a live run owns them: {', '.join(sorted(leftovers))}"
    print(line, file=sys.stderr, flush=True)


def busy_error(path: Path, fd: int, what: str) -> UserError:
    pid = lock_holder(fd)
    who = f"another run (pid {pid})" if pid else "another run"
    return UserError(f"{path}: {who} is writing {what} right now; wait for it to finish or choose another path")


def claim_folder(folder: Path) -> int:
    """Open ``folder``, take its lock and remove the staging folders dead runs left there (see the
    module docstring); returns the fd, whose closing releases the lock. A live holder is a UserError
    naming it. Without locks: one warning naming the staging folders left alone, and −1 (no fd is
    held: it would guard nothing, and a folder cannot be opened on every platform)."""
    fd = -1
    try:
        if fcntl is None:
            raise LocksUnavailable.no_fcntl()
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        locked = try_lock(fd)
    except LocksUnavailable as err:
        if fd >= 0:
            os.close(fd)
        warn_unlocked(folder, err, staging_folders(folder))
        return -1
    if not locked:
        err = busy_error(folder, fd, "outputs into this folder")
        os.close(fd)
        raise err
    for name in staging_folders(folder):  # the lock is ours: no live run owns any of them
        shutil.rmtree(folder / name, ignore_errors=True)
    return fd


def staging_folders(folder: Path) -> list[str]:
    """Names of the staging folders (ours or earlier runs') in ``folder``."""
    return [e.name for e in os.scandir(folder) if e.name.startswith(STAGING_PREFIX) and e.is_dir(follow_symlinks=False)]


def temp_path(path: Path) -> Path:
    """The temporary file every run writing ``path`` uses: short, whatever the length of the name."""
    digest = hashlib.sha1(os.fsencode(path.name)).hexdigest()[:16]
    return path.parent / f"{TEMP_PREFIX}{digest}{TEMP_SUFFIX}"


def temp_files(folder: Path) -> list[str]:
    """Names of the ``.hw2-….part`` files (ours or earlier runs') in ``folder``."""
    return [
        e.name
        for e in os.scandir(folder)
        if e.name.startswith(TEMP_PREFIX)
        and e.name.endswith(TEMP_SUFFIX)
        and not e.name.startswith(STAGING_PREFIX)
        and e.is_file(follow_symlinks=False)
    ]


def remove_dead_temps(folder: Path) -> None:
    """Remove the ``.hw2-….part`` files in ``folder`` whose run is gone (their lock can be taken).
    :class:`LocksUnavailable` where locks do not work."""
    for name in temp_files(folder):
        path = folder / name
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(path, os.O_RDONLY)
            try:
                if try_lock(fd) and same_file(fd, path):
                    os.unlink(path)
            finally:
                os.close(fd)


def same_file(fd: int, path: str | os.PathLike) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (it was not removed or replaced meanwhile)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def open_locked_temp(path: Path) -> tuple[Path, int]:
    """Clear dead temporaries beside ``path``, then create and lock ``temp_path(path)``; returns it and its
    fd, to be held until the temporary has replaced ``path`` (closing the fd releases the lock). A live
    run writing ``path`` is a UserError. Without locks: one warning naming the temporaries left alone,
    and a new, empty temporary of this run's own, already closed, with −1 for its fd (an open file
    cannot be renamed on Windows, and an unlocked fd would guard nothing)."""
    try:
        return _open_locked_temp(path)
    except LocksUnavailable as err:
        leftovers = temp_files(path.parent)
        fd, name = tempfile.mkstemp(prefix=temp_path(path).stem + "-", suffix=TEMP_SUFFIX, dir=path.parent)
        os.close(fd)
        warn_unlocked(path, err, leftovers)
        return Path(name), -1


def _open_locked_temp(path: Path) -> tuple[Path, int]:
    remove_dead_temps(path.parent)
    tmp = temp_path(path)
    while True:
        try:
            fd, created = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), True
        except FileExistsError:
            fd, created = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600), False
        try:
            locked = try_lock(fd)
        except LocksUnavailable:
            if created:  # ours and empty: no one else's run can be using it
                os.unlink(tmp)
            os.close(fd)
            raise
        try:
            for _ in range(LOCK_RETRIES):  # another run's sweep may hold it for an instant before removing it
                if locked or not same_file(fd, tmp):
                    break
                time.sleep(0.05)
                locked = try_lock(fd)
        except LocksUnavailable:  # another run held it a moment ago: not ours to remove
            os.close(fd)
            raise
        if locked and same_file(fd, tmp):  # ours, and not removed by a sweep between our open and our lock
            os.ftruncate(fd, 0)
            return tmp, fd
        if locked or not same_file(fd, tmp):
            os.close(fd)
            continue
        err = busy_error(path, fd, "this file")
        os.close(fd)
        raise err
