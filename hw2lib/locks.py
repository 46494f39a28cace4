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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Optional

from .cli import UserError

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


def try_lock(fd: int) -> bool:
    """Take an exclusive flock on ``fd`` without waiting; False when another process holds one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise


def busy_error(path: Path, fd: int, what: str) -> UserError:
    pid = lock_holder(fd)
    who = f"another run (pid {pid})" if pid else "another run"
    return UserError(f"{path}: {who} is writing {what} right now; wait for it to finish or choose another path")


def lock_folder(folder: Path) -> int:
    """Open ``folder`` and take its lock (see the module docstring); returns the fd, whose closing
    releases it. A live holder is a UserError naming it."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    if not try_lock(fd):
        err = busy_error(folder, fd, "outputs into this folder")
        os.close(fd)
        raise err
    return fd


def remove_dead_staging(folder: Path) -> None:
    """Remove the staging folders earlier runs left in ``folder`` (call with its lock held: then no live
    run owns any of them)."""
    for entry in os.scandir(folder):
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def temp_path(path: Path) -> Path:
    """The temporary file every run writing ``path`` uses: short, whatever the length of the name."""
    digest = hashlib.sha1(os.fsencode(path.name)).hexdigest()[:16]
    return path.parent / f"{TEMP_PREFIX}{digest}{TEMP_SUFFIX}"


def remove_dead_temps(folder: Path) -> None:
    """Remove the ``.hw2-….part`` files in ``folder`` whose run is gone (their lock can be taken)."""
    for entry in os.scandir(folder):
        name = entry.name
        if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)) or name.startswith(STAGING_PREFIX):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                if try_lock(fd) and same_file(fd, entry.path):
                    os.unlink(entry.path)
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
    fd (closing the fd releases the lock). A live run writing ``path`` is a UserError."""
    remove_dead_temps(path.parent)
    tmp = temp_path(path)
    while True:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
        locked = try_lock(fd)
        for _ in range(LOCK_RETRIES):  # another run's sweep may hold it for an instant before removing it
            if locked or not same_file(fd, tmp):
                break
            time.sleep(0.05)
            locked = try_lock(fd)
        if locked and same_file(fd, tmp):  # ours, and not removed by a sweep between our open and our lock
            os.ftruncate(fd, 0)
            return tmp, fd
        if locked or not same_file(fd, tmp):
            os.close(fd)
            continue
        err = busy_error(path, fd, "this file")
        os.close(fd)
        raise err
