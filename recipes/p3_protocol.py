"""The homework's protocol for P3, checked by each folder's role, not by how its path is spelt.

Unsupervised adaptation: a source-only or adapted run (``p3.train``) learns from exactly one labelled
folder, MNIST-M; a target-only run's one source is its own target; a refinement (``p3.refine``) sees
the target alone and starts from its own first step (``<target>_dann-plus-first_s<N>``, checked as a
run of its own; a record's ``ran_as`` maps folders a run was made in to the names it ships under).
Every run's target is its domain's folder
(``digits/svhn`` or ``digits/usps``). A run's role comes from its name,
``<svhn|usps>_<source-only|dann|dann-plus|target-only>[-first][_s<seed>]``.

A data folder is compared as the folder it is: a path that exists here is resolved (``..``, ``//``,
symlinks); one that does not (a log from another machine) is normalised (``..``, ``//``). With
``--digits`` every folder must be the very same folder as ``DIGITS/mnistm`` or ``DIGITS/<target>``.

    python recipes/p3_protocol.py RUN_DIR… [--digits DIGITS_DIR]   # exit 1, one line per violation
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hw2lib.run_record import read_record
from p3.table import DATA_FOLDERS

SOURCE_FOLDER = "mnistm"  # the one labelled folder an adapted or source-only run may learn from
RUN_NAME = re.compile(
    r"^(?P<domain>svhn|usps)_(?P<method>source-only|dann|dann-plus|target-only)(?P<first>-first)?(_s\d+)?$"
)


def folder_identity(path: str) -> str:
    """The folder ``path`` names: resolved where it exists here, else normalised (absolute, no ``..``/``//``)."""
    path = os.path.expanduser(path)
    return os.path.realpath(path) if os.path.exists(path) else os.path.normpath(os.path.abspath(path))


def _same(a: str | Path, b: str | Path) -> bool:
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def _is_folder(path: str, name: str, digits: Optional[Path]) -> bool:
    """Whether ``path`` is the data folder ``name`` (``DIGITS/name`` itself, when ``digits`` is given)."""
    if os.path.basename(folder_identity(path)) != name:
        return False
    return digits is None or _same(path, digits / name)


def violations(
    run_name: str, args: dict, digits: Optional[Path] = None, ran_as: Optional[dict] = None, runs: Optional[Path] = None
) -> list[str]:
    """What breaks the protocol in one sitting's arguments (a line of ``record.jsonl``); empty when nothing
    does. With ``runs`` (the folder of the runs, where they exist), a refinement's checkpoint must be the
    very file ``runs/<its first step>/best.pt``."""
    role = RUN_NAME.match(run_name)
    if not role:
        return [f"{run_name}: not a run of the report's table (expected <svhn|usps>_<method>[-first][_sN])"]
    domain, method = role["domain"], role["method"]
    found = []
    target = args.get("target", "")
    if not _is_folder(target, DATA_FOLDERS[domain], digits):
        found.append(f"{run_name}: its target {target} is not the {domain} folder ({DATA_FOLDERS[domain]}/)")
    sources = list(args.get("source") or [])
    if args.get("init_from") and not sources:  # p3.refine: the target alone, from its own first step
        first = run_name.replace("_dann-plus_s", "_dann-plus-first_s")
        started = Path(args["init_from"]).parent.name
        started = (ran_as or {}).get(started, started)
        if method != "dann-plus" or role["first"] or started != first:
            found.append(f"{run_name}: refines {args['init_from']}, not its own first step {first}/best.pt")
        elif runs is not None and not _same(args["init_from"], runs / first / "best.pt"):
            found.append(f"{run_name}: refines {args['init_from']}, not the file {runs / first / 'best.pt'}")
    elif method == "target-only":
        if [folder_identity(s) for s in sources] != [folder_identity(target)]:
            found.append(f"{run_name}: a target-only run learns from its own target alone, not {sources}")
    elif len(sources) != 1 or not _is_folder(sources[0], SOURCE_FOLDER, digits):
        found.append(
            f"{run_name}: learns from {sources or 'nothing'}; its one labelled source must be {SOURCE_FOLDER}/"
        )
    return found


def check_runs(run_dirs: Sequence[Path], digits: Optional[Path] = None, runs: Optional[Path] = None) -> list[str]:
    """Every violation in every sitting of the runs' records. A run without a record, or whose record
    starts after step 0 (earlier sittings unrecorded), is a violation."""
    found = []
    for run in run_dirs:
        sittings = read_record(run)
        if not sittings:
            found.append(f"{run}: no record.jsonl (what it trained on is unknown)")
        elif sittings[0].get("step", 0) > 0 and "converted_from" not in sittings[0]:
            found.append(f"{run}: its record starts at step {sittings[0]['step']} (earlier sittings unrecorded)")
        for sitting in sittings:
            args, ran_as = sitting["args"], sitting.get("ran_as")
            found += [v for v in violations(Path(run).name, args, digits, ran_as, runs) if v not in found]
    return found


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python recipes/p3_protocol.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("runs", nargs="+", type=Path, help="run folders (each with record.jsonl)")
    p.add_argument("--digits", type=Path, help="hw2_data/digits: folders must be exactly DIGITS/mnistm, DIGITS/svhn…")
    args = p.parse_args(argv)
    if args.digits is not None and not args.digits.is_dir():
        sys.exit(f"error: {args.digits}: no such directory (expected hw2_data/digits)")
    found = check_runs(args.runs, args.digits)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
