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
import http.client
import json
import re
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

from .cli import run_main
from .files import replacing
from .manifest import REPO, load_manifest, matches, sha256

DRIVE = re.compile(r"^(?:gdrive:|https://drive\.google\.com/(?:file/d/|uc\?(?:export=download&)?id=))([\w-]+)")


class DiscardDownload(Exception):
    """A download that arrived but is not the expected file: it must not replace anything."""


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
    if matches(entry, path):
        return True, f"ok       {label}"
    state = "missing" if not path.exists() else "checksum mismatch"
    url = entry.get("url")
    if not url:
        return False, (
            f"FAILED   {label}: {state} and the manifest has no URL for it; it is kept in git, "
            f"so restore it with: git checkout -- {entry['path']}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path) as tmp:
            fetch(url, tmp)
            got = sha256(tmp)
            if got != entry["sha256"]:
                raise DiscardDownload(f"downloaded file has sha256 {got[:12]}…, expected {entry['sha256'][:12]}…")
        return True, f"fetched  {label} ({state} before) from {url}"
    except DiscardDownload as err:
        return False, f"FAILED   {label}: {err}; nothing replaced"
    except (OSError, ValueError, http.client.HTTPException) as err:
        return False, f"FAILED   {label}: {state}, and downloading {url} failed ({err}); nothing replaced"


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
