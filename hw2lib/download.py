"""``hw2_download.sh``: verify every checkpoint the manifest lists (they are all kept in git).

    python -m hw2lib.download [--manifest checkpoints.json] [--root REPO] [--rehash]

Every shipped checkpoint is under 50 MB and committed, so nothing is fetched: for each manifest
entry ``{name, path, size, sha256}`` the file must exist with that size and sha256. One line per
checkpoint; a missing or damaged one is named with the command that restores it from git, and the
exit status is 1. ``--rehash`` rewrites the sizes and hashes after a retraining.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from .cli import run_main
from .manifest import REPO, load_manifest, matches, sha256


def verify(entry: dict, root: Path) -> tuple[bool, str]:
    """Check one checkpoint; returns (ok, the line to print)."""
    path = root / entry["path"]
    label = f"{entry['name']} ({entry['path']})"
    if matches(entry, path):
        return True, f"ok       {label}"
    state = "missing" if not path.exists() else "checksum mismatch"
    return False, f"FAILED   {label}: {state}; it is kept in git, so restore it with: git checkout -- {entry['path']}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bash hw2_download.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
        ok, line = verify(entry, Path(args.root))
        print(line, flush=True)
        if not ok:
            failed.append(entry["path"])
    if failed:
        print(f"error: {len(failed)} checkpoint(s) not usable: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
