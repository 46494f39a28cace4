"""``hw2_download.sh``: make every checkpoint in the manifest present and verified, or say why not.

    python -m hw2lib.download [--manifest checkpoints.json] [--root REPO]

For each manifest entry ``{name, path, size, sha256, url}``: a file whose sha256 matches is left
alone; a missing or mismatching one is fetched from ``url`` (Google Drive through gdown, anything
else over HTTP(S)) into a temporary file beside its destination, verified, and only then moved into
place with ``os.replace``, so a half-downloaded or wrong file is never loadable. One line per
checkpoint; exit status 1 naming each checkpoint that could not be made right.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

from .cli import UserError, run_main

REPO = Path(__file__).resolve().parents[1]
DRIVE = re.compile(r"^(?:gdrive:|https://drive\.google\.com/(?:file/d/|uc\?(?:export=download&)?id=))([\w-]+)")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` (a temporary path); raises OSError/ValueError on failure."""
    drive = DRIVE.match(url)
    if drive:
        import gdown  # only needed for Google Drive ids

        if gdown.download(id=drive.group(1), output=str(dest), quiet=True) is None:
            raise OSError("gdown could not download it")
        return
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        expected = response.headers.get("Content-Length")
        shutil.copyfileobj(response, out, 1 << 20)
    if expected is not None and dest.stat().st_size != int(expected):
        raise OSError(f"transfer cut short ({dest.stat().st_size} of {expected} bytes)")


def ensure(entry: dict, root: Path) -> tuple[bool, str]:
    """Make one checkpoint right; returns (ok, the line to print)."""
    path = root / entry["path"]
    label = f"{entry['name']} ({entry['path']})"
    if path.is_file() and sha256(path) == entry["sha256"]:
        return True, f"ok       {label}"
    state = "missing" if not path.exists() else "checksum mismatch"
    url = entry.get("url")
    if not url:
        return False, (
            f"FAILED   {label}: {state} and the manifest has no URL for it; it is kept in git, "
            f"so restore it with: git checkout -- {entry['path']}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fetch(url, tmp)
        got = sha256(tmp)
        if got != entry["sha256"]:
            return (
                False,
                f"FAILED   {label}: downloaded file has sha256 {got[:12]}…, expected {entry['sha256'][:12]}…; nothing replaced",
            )
        os.replace(tmp, path)
        return True, f"fetched  {label} ({state} before) from {url}"
    except (OSError, ValueError, http.client.HTTPException) as err:
        return False, f"FAILED   {label}: {state}, and downloading {url} failed ({err}); nothing replaced"
    finally:
        tmp.unlink(missing_ok=True)


def load_manifest(path: Path) -> list[dict]:
    try:
        entries = json.loads(path.read_text())["checkpoints"]
        for e in entries:
            missing = {"name", "path", "sha256"} - set(e)
            if missing:
                raise KeyError(", ".join(sorted(missing)))
        return entries
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (expected the checkpoint manifest)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a valid checkpoint manifest ({err})") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hw2lib.download", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--manifest", default=str(REPO / "checkpoints.json"), help="checkpoint manifest (JSON)")
    p.add_argument("--root", default=str(REPO), help="folder the manifest's paths are relative to")
    p.add_argument(
        "--rehash", action="store_true", help="after retraining: rewrite size and sha256 of every present checkpoint"
    )
    return p


def rehash(manifest: Path, root: Path) -> None:
    entries = load_manifest(manifest)
    for e in entries:
        path = root / e["path"]
        if path.is_file():
            e["size"], e["sha256"] = path.stat().st_size, sha256(path)
            print(f"hashed   {e['name']} ({e['path']})")
    manifest.write_text(json.dumps({"checkpoints": entries}, indent=2) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    if args.rehash:
        return rehash(Path(args.manifest), Path(args.root))
    failed = []
    for entry in load_manifest(Path(args.manifest)):
        ok, line = ensure(entry, Path(args.root))
        print(line, flush=True)
        if not ok:
            failed.append(entry["path"])
    if failed:
        print(f"error: {len(failed)} checkpoint(s) not usable: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
