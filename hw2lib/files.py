"""Files and folders at the edges: listing inputs, and writes that are all-or-nothing.

Every writer here stages its output beside the destination (same filesystem) and moves it into
place with ``os.replace``, so a reader never sees half a file, and a failure or an interrupt leaves
the destination as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from .cli import UserError, signals_held


def list_files(folder: str | os.PathLike, suffixes: Iterable[str], what: str) -> list[Path]:
    """Files in ``folder`` whose suffix (case-insensitive) is in ``suffixes``, sorted by name."""
    folder = Path(folder)
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


def check_output_dir(out_dir: str | os.PathLike) -> Path:
    """Validate (without creating) an output folder: it may exist as a folder or not exist yet."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory (expected an output folder)")
    return out_dir


def write_files_atomically(out_dir: str | os.PathLike, files: Mapping[str, bytes]) -> None:
    """Write ``{name: bytes}`` into ``out_dir``: all of them, or (on any error or interrupt) none.

    Everything is first staged in a temporary folder beside ``out_dir`` (same filesystem), then
    moved into place with ``os.replace``; a file it replaces is first set aside in the staging
    folder. If anything stops the moves (an OS error, Ctrl-C, or SIGTERM under
    :func:`hw2lib.cli.run_main`), what was moved is taken back and what was replaced is restored,
    with signals held off meanwhile, so ``out_dir`` is exactly as it was. Other files already in
    ``out_dir`` are never touched. The staging folder is always removed.
    """
    out_dir = check_output_dir(out_dir)
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=parent))
    except OSError as err:
        raise UserError(f"{out_dir}: cannot write here ({err.strerror})") from None
    created_dir = not out_dir.exists()
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        (staging / ".replaced").mkdir()
        out_dir.mkdir(parents=True, exist_ok=True)
        moved: list[str] = []
        try:
            for name in files:
                if (out_dir / name).exists():
                    os.replace(out_dir / name, staging / ".replaced" / name)
                moved.append(name)
                os.replace(staging / name, out_dir / name)
        except BaseException:
            with signals_held():
                _roll_back(out_dir, staging, moved, created_dir)
            raise
    except OSError as err:
        raise UserError(f"{out_dir}: cannot write output ({err.strerror})") from None
    finally:
        with signals_held():
            shutil.rmtree(staging, ignore_errors=True)


def _roll_back(out_dir: Path, staging: Path, moved: list[str], created_dir: bool) -> None:
    """Undo :func:`write_files_atomically`'s moves: remove what was moved in, put back what it replaced."""
    for name in reversed(moved):
        if not (staging / name).exists() and (out_dir / name).exists():  # the new file made it into place
            os.unlink(out_dir / name)
    for old in (staging / ".replaced").iterdir():
        os.replace(old, out_dir / old.name)
    if created_dir and out_dir.exists() and not any(out_dir.iterdir()):
        out_dir.rmdir()


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` in one
    ``os.replace``. The temporary file is removed however the block ends (error, Ctrl-C, SIGTERM
    under :func:`hw2lib.cli.run_main`), so ``path`` is either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with signals_held():
            tmp.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write a text file through :func:`replacing`; OS errors become a UserError naming ``path``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory (expected a file path to write)")
    try:
        with replacing(path) as tmp:
            tmp.write_text(text, newline="")
    except OSError as err:
        raise UserError(f"{path}: cannot write here ({err.strerror})") from None
