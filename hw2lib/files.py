"""Files and folders at the edges: listing inputs, and writes that are all-or-nothing.

Every writer here stages its output beside the destination (same filesystem) and moves it into
place with ``os.replace``, so a reader never sees half a file, and a failure or an interrupt leaves
the destination as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from .cli import UserError, signals_held
from .locks import STAGING_PREFIX, claim_folder, open_locked_temp


def list_files(folder: str | os.PathLike, suffixes: Iterable[str], what: str) -> list[Path]:
    """Files in ``folder`` whose suffix (case-insensitive) is in ``suffixes``, sorted by name."""
    folder = require_path(folder, f"the folder of {what}")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such directory (expected a folder of {what})")
    wanted = tuple(s.lower() for s in suffixes)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in wanted)
    if not files:
        raise UserError(f"{folder}: no {what} ({'/'.join(wanted)}) in this folder")
    seen: dict[str, str] = {}
    for p in files:
        twin = seen.setdefault(p.name.lower(), p.name)
        if twin != p.name:
            raise UserError(
                f"{folder}: {twin} and {p.name} differ only in case; rename one (their outputs would collide)"
            )
    return files


def require_path(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path; an empty argument (an unset shell variable, say) is a UserError, not ``.``."""
    if not str(path):
        raise UserError(f"empty path given for {what}")
    return Path(path)


def _is_regular_or_absent(path: Path) -> bool:
    """True when nothing is at ``path`` or it is a plain file (not a folder, link, device or FIFO)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a file where a parent folder should be)
        return True


def check_output_dir(out_dir: str | os.PathLike, names: Iterable[str] = ()) -> Path:
    """Validate (without creating) an output folder: it may exist as a folder or not exist yet, and
    none of the ``names`` it will receive may be anything but a regular file (which we would replace)."""
    out_dir = require_path(out_dir, "the output folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory (expected an output folder)")
    for name in names:
        if not _is_regular_or_absent(out_dir / name):
            raise UserError(
                f"{out_dir / name}: exists and is not a regular file; an output of that name would replace it "
                "(move it away or choose another folder)"
            )
    return out_dir


class OutputFolder:
    """An output folder made ready *before* the work that fills it, then filled all-or-nothing.

    ``OutputFolder(out_dir, names)`` checks the folder and the names it will receive, creates the
    folder (and missing parents) and a hidden staging folder inside it: a folder that cannot be
    written is reported before any sampling starts, and the staging folder is on the same filesystem
    as the outputs whatever is mounted where (a mount point as OUT_DIR, a read-only parent).
    :meth:`commit` writes ``{name: bytes}`` into the staging folder, then moves each file into place
    with ``os.replace``; a regular file it replaces is first set aside there and its permission bits
    are kept for the new file (new files get what ``open()`` gives, the umask respected). If anything
    stops the moves (an OS error, Ctrl-C, or SIGTERM under :func:`hw2lib.cli.run_main`), what was
    moved is taken back and what was replaced is restored, with signals held off meanwhile. Used as
    a context manager: the staging folder is always removed, and folders this run created are
    removed again unless the outputs were committed. Other files in ``out_dir`` are never touched.

    For its whole life it holds the folder's lock (``hw2lib/locks.py``): a second run into the same
    folder stops at once with an error naming this one, and the staging folders that killed runs
    left behind (no live run can own them while the lock is ours) are removed before sampling.
    Where locks are not available it warns once and goes on without (``hw2lib/locks.py``).
    """

    def __init__(self, out_dir: str | os.PathLike, names: Iterable[str]):
        self.path = check_output_dir(out_dir, names)
        self.names = list(names)
        self.created: list[Path] = []
        self.committed = False
        self.lock_fd = -1
        try:
            missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
            for folder in reversed(missing):
                with contextlib.suppress(FileExistsError):  # a concurrent run made it: not ours to remove
                    folder.mkdir()
                    self.created.append(folder)
            self.lock_fd = claim_folder(self.path)
            self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.path))
        except (OSError, UserError) as err:
            self._release()
            if isinstance(err, UserError):
                raise
            raise UserError(f"{err.filename or self.path}: cannot write the outputs here ({err.strerror})") from None

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc) -> None:
        with signals_held():
            shutil.rmtree(self.staging, ignore_errors=True)
            self._release()

    def _release(self) -> None:
        """Remove the folders this run made (unless committed), then drop the folder's lock."""
        if not self.committed:
            self._remove_created()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    def _remove_created(self) -> None:
        for folder in reversed(self.created):  # deepest first; only if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()

    def commit(self, files: Mapping[str, bytes]) -> None:
        """Move ``files`` into the folder: all of them, or (on any error or interrupt) none."""
        check_output_dir(self.path, files)  # nothing has appeared under our names meanwhile
        replaced = self.staging / ".replaced"
        try:
            replaced.mkdir()
            for name, data in files.items():
                (self.staging / name).write_bytes(data)
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(self.staging / name, stat.S_IMODE(os.stat(self.path / name).st_mode))
            moved: list[str] = []
            try:
                for name in files:
                    if (self.path / name).exists():
                        os.replace(self.path / name, replaced / name)
                    moved.append(name)
                    os.replace(self.staging / name, self.path / name)
            except BaseException:
                with signals_held():
                    self._roll_back(moved)
                raise
        except OSError as err:
            raise UserError(f"{err.filename or self.path}: cannot write the outputs ({err.strerror})") from None
        self.committed = True

    def _roll_back(self, moved: list[str]) -> None:
        """Undo :meth:`commit`'s moves: remove what was moved in, put back what it replaced."""
        for name in reversed(moved):
            if not (self.staging / name).exists() and (self.path / name).exists():  # the new file made it
                os.unlink(self.path / name)
        for old in (self.staging / ".replaced").iterdir():
            os.replace(old, self.path / old.name)


def write_files_atomically(out_dir: str | os.PathLike, files: Mapping[str, bytes]) -> None:
    """Write ``{name: bytes}`` into ``out_dir`` all-or-nothing (an :class:`OutputFolder` used at once)."""
    with OutputFolder(out_dir, files) as out:
        out.commit(files)


def new_file_mode() -> int:
    """The permission bits ``open(path, "w")`` gives a new file: 0o666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def output_file(path: str | os.PathLike, what: str = "the output file") -> Path:
    """Where a file written to ``path`` lands: ``path`` itself or, when it is a symbolic link, the file
    it points to (the link is written *through*, never replaced by a file). A folder, device, FIFO or
    socket there is a UserError: writing would destroy or bypass it."""
    path = require_path(path, what)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.is_dir():
        raise UserError(f"{path}: is a directory (expected a file path to write)")
    if not _is_regular_or_absent(path):
        raise UserError(f"{path}: exists and is not a regular file (a device, FIFO or socket); refusing to replace it")
    return path


def check_writable_file(path: str | os.PathLike, what: str = "the output file") -> Path:
    """:func:`output_file`, plus: the nearest existing folder above it is a folder we may write in.
    Called before the work that produces the file, so that a bad path fails first, not last."""
    path = output_file(path, what)
    folder = next(p for p in path.parents if p.exists() or p == Path(p.anchor))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: cannot write {path.name} there (not a writable folder)")
    return path


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``'s final file (see :func:`output_file`); when the block
    succeeds it replaces that file in one ``os.replace``, with the old file's permission bits or, for
    a new file, what ``open()`` would give (the umask respected). The temporary file, and any folder
    made for it, is removed however the block fails (error, Ctrl-C, SIGTERM under
    :func:`hw2lib.cli.run_main`), so ``path`` is either the old file or the complete new one. The
    temporary file is locked for the block's life (``hw2lib/locks.py``), its fd held open across the
    rename: a second run writing ``path`` meanwhile stops at once, and the temporaries that killed runs
    left beside it are removed first. Without locks no fd is held (−1): the temporary is closed while the
    block writes it and when it is renamed, as Windows requires."""
    path = output_file(path)
    created: list[Path] = []
    done = False
    tmp, fd = None, -1
    try:
        for folder in reversed([p for p in (path.parent, *path.parent.parents) if not p.exists()]):
            folder.mkdir()
            created.insert(0, folder)
        tmp, fd = open_locked_temp(path)  # one run per output; dead runs' temporaries removed; −1: unlocked
        yield tmp
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else new_file_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        done = True
    finally:
        with signals_held():
            if tmp is not None and not done:
                tmp.unlink(missing_ok=True)
            if fd >= 0:
                os.close(fd)  # releases the lock, after the rename: the lock guards the output until it is in place
            if not done:
                for folder in created:  # deepest first
                    with contextlib.suppress(OSError):
                        folder.rmdir()


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text through :func:`replacing`; OS errors become a UserError naming the file.

    File names that are not valid UTF-8 reach Python as lone surrogates (``os.listdir``'s
    ``surrogateescape``); they are written back as the very bytes they came from, so a CSV row
    names the file exactly as it is on disk.
    """
    try:
        with replacing(path) as tmp:
            write_text(tmp, text)
    except OSError as err:
        raise UserError(f"{err.filename or path}: cannot write here ({err.strerror})") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8, with lone surrogates back to their bytes (see :func:`write_text_atomically`)."""
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        handle.write(text)
