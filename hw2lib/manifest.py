"""The checkpoint manifest ``checkpoints.json``: what every shipped checkpoint's size and sha256 must be.

Entries are ``{name, path, size, sha256}`` with ``path`` relative to the repository root.
``hw2_download.sh`` verifies them all; every load of a shipped checkpoint checks it first
(:func:`verify_shipped`), so a damaged file stops with the fix instead of running.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from .cli import UserError

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "checkpoints.json"


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(path: str | os.PathLike = MANIFEST) -> list[dict]:
    """The manifest's entries; a missing or malformed manifest is a UserError naming it."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())["checkpoints"]
        for e in entries:
            missing = {"name", "path", "size", "sha256"} - set(e)
            if missing:
                raise KeyError(", ".join(sorted(missing)))
        return entries
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (expected the checkpoint manifest)") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory (expected the checkpoint manifest, a JSON file)") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a valid checkpoint manifest (not UTF-8 text: {err.reason})") from None
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a valid checkpoint manifest ({err})") from None


def matches(entry: dict, path: Path) -> bool:
    """Whether the file at ``path`` is the one ``entry`` describes (size first: it is free)."""
    return path.is_file() and path.stat().st_size == entry["size"] and sha256(path) == entry["sha256"]


@functools.lru_cache(maxsize=None)
def _shipped() -> dict[Path, dict]:
    return {Path(os.path.realpath(REPO / e["path"])): e for e in load_manifest()} if MANIFEST.exists() else {}


def verify_shipped(path: str | os.PathLike) -> None:
    """If ``path`` is a checkpoint the manifest lists, raise a UserError unless it matches its entry."""
    entry = _shipped().get(Path(os.path.realpath(path)))
    if entry is not None and Path(path).is_file() and not matches(entry, Path(path)):
        raise UserError(
            f"{path}: damaged or incomplete (size or sha256 differs from checkpoints.json; "
            f"bash {REPO / 'hw2_download.sh'} checks them all); restore it with: git checkout -- {entry['path']}"
        )
