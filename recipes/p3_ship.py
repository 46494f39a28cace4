"""Ship what the protocol picks from ``recipes/p3_train_all.sh``'s runs, all or nothing.

    python recipes/p3_ship.py DIGITS_DIR RUNS_DIR        (bash recipes/p3_ship.sh DIGITS_DIR RUNS_DIR)

Every row's ``best.pt`` (best target val) and each DANN+ from the seed whose ``best.pt`` has the best
val (the lower seed on a tie) become ``p3/checkpoints/<target>_<method>.pt``; the shipped runs' logs
(every DANN+ seed with its first step, and the other rows) become ``logs/p3/shipped/<run>/``; the
manifest ``checkpoints.json`` is rehashed. Every shipped run must pass ``recipes/p3_protocol.py`` with
``--digits DIGITS_DIR`` first.

All or nothing: everything is staged in ``p3/.ship-staging-*``, then swapped in with SIGINT and
SIGTERM held back, each replaced file kept in the staging folder until the swap has finished and the
swap's moves written there first (``swap.json``). A failure or an interrupt while staging leaves the
tree exactly as it was; a failure during the swap moves every file back, and if a move back fails
too, the staging folder and the replaced files in it are kept and named. A run killed outright
(SIGKILL, power loss) leaves its staging folder: the next run puts back what its ``swap.json`` had
moved, then removes it, before doing anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "recipes")]  # this checkout's modules, and p3_protocol beside this file
from p3_protocol import check_runs  # noqa: E402

from hw2lib.cli import UserError, run_main, signals_held  # noqa: E402
from hw2lib.manifest import sha256  # noqa: E402
from p3.table import DOMAINS, METHODS  # noqa: E402

ROWS = [m for m in METHODS if m != "dann-plus"]  # one run each; DANN+ ships the best of its seeds
LOGGED = ("metrics.jsonl", "record.jsonl")  # what each shipped run's log folder keeps


def dann_plus_seeds(runs: Path, domain: str) -> list[Path]:
    """``<domain>_dann-plus_s<N>`` run folders, by seed (folders only: the scripts' ``.log`` files are not runs)."""
    found = [p for p in runs.glob(f"{domain}_dann-plus_s*") if p.is_dir() and re.fullmatch(r".*_s\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.rsplit("_s", 1)[1]))


def best_seed(seeds: list[Path]) -> Path:
    """The seed whose ``best.pt`` has the highest val accuracy; the lower seed on a tie."""
    import torch

    scores = [torch.load(p / "best.pt", map_location="cpu", weights_only=True)["val_accuracy"] for p in seeds]
    return seeds[max(range(len(seeds)), key=lambda i: (scores[i], -i))]


def plan(runs: Path) -> tuple[dict[str, Path], list[Path]]:
    """(shipped file name → the run whose ``best.pt`` it is, every run whose log ships)."""
    picks, logged = {}, []
    for domain in DOMAINS:
        seeds = dann_plus_seeds(runs, domain)
        if not seeds:
            raise UserError(f"{runs}: no {domain}_dann-plus_s<N> runs (recipes/p3_train_all.sh makes them)")
        picks[f"{domain}_dann-plus.pt"] = best_seed(seeds)
        logged += [p for s in seeds for p in (s, runs / s.name.replace("_dann-plus_s", "_dann-plus-first_s"))]
        for method in ROWS:
            picks[f"{domain}_{method}.pt"] = runs / f"{domain}_{method}"
            logged.append(runs / f"{domain}_{method}")
    for run in logged:
        missing = [n for n in LOGGED if not (run / n).is_file()]
        if missing:
            raise UserError(f"{run}: no {' or '.join(missing)} (not a finished run of recipes/p3_train_all.sh)")
    return picks, logged


def stage(picks: dict[str, Path], logged: list[Path], repo: Path, staging: Path) -> None:
    """Copy every new file into ``staging`` in the layout it will have: ``checkpoints/``, ``logs/``,
    and the rehashed ``checkpoints.json``."""
    (staging / "checkpoints").mkdir()
    for name, run in picks.items():
        shutil.copyfile(run / "best.pt", staging / "checkpoints" / name)
    for run in logged:
        (staging / "logs" / run.name).mkdir(parents=True)
        for name in LOGGED:
            shutil.copyfile(run / name, staging / "logs" / run.name / name)
    manifest = json.loads((repo / "checkpoints.json").read_text())
    for entry in manifest["checkpoints"]:
        new = staging / "checkpoints" / Path(entry["path"]).name
        if entry["path"].startswith("p3/checkpoints/") and new.is_file():
            entry["size"], entry["sha256"] = new.stat().st_size, sha256(new)
    (staging / "checkpoints.json").write_text(json.dumps(manifest, indent=2) + "\n")


STAGING = ".ship-staging-"
JOURNAL = "swap.json"  # the swap's moves, written before the first one: how a killed swap is put back


class KeptStaging(UserError):
    """A swap could not be put back whole: the staging folder, with the replaced files, must stay."""


def put_back(moves: list[dict]) -> list[str]:
    """Undo ``moves`` (``{new, dest, kept}``, in the order they were made), each on its own, last first:
    the new file goes back to ``new`` and the replaced one (``kept``) to ``dest``. Returns what failed."""
    failed = []
    for move in reversed(moves):
        new, dest, kept = Path(move["new"]), Path(move["dest"]), move["kept"] and Path(move["kept"])
        try:
            if kept is not None and kept.exists():
                if dest.exists() and not new.exists():
                    os.replace(dest, new)
                os.replace(kept, dest)
            elif kept is None and dest.exists() and not new.exists():
                os.replace(dest, new)
        except OSError as err:
            failed.append(f"{dest} ({err.strerror or err})")
    return failed


def swap(repo: Path, staging: Path) -> None:
    """Move the staged files into place; the ones they replace go to ``staging/old`` first, and the
    moves are written to ``staging/swap.json`` before any is made, so a failure part-way (or, in the
    next run, a kill) moves every one back. Signals are held back for the whole swap."""
    target = repo / "p3" / "checkpoints"
    pairs = [(staging / "checkpoints" / n, target / n) for n in sorted(os.listdir(staging / "checkpoints"))]
    logs = repo / "logs" / "p3" / "shipped"
    logs.parent.mkdir(parents=True, exist_ok=True)  # a checkout from before logs/ had its own folder
    pairs += [(staging / "logs", logs), (staging / "checkpoints.json", repo / "checkpoints.json")]
    (staging / "old").mkdir()
    moves = [
        {"new": str(new), "dest": str(dest), "kept": str(staging / "old" / str(i)) if dest.exists() else None}
        for i, (new, dest) in enumerate(pairs)
    ]
    (staging / JOURNAL).write_text(json.dumps(moves))
    with signals_held():
        done = []
        try:
            for move in moves:
                done.append(move)
                if move["kept"]:
                    os.replace(move["dest"], move["kept"])
                os.replace(move["new"], move["dest"])
        except BaseException:
            failed = put_back(done)
            if failed:
                raise KeptStaging(
                    f"the swap failed and could not be put back whole ({', '.join(failed)}); the replaced "
                    f"files are kept in {staging / 'old'} (swap.json lists where each belongs)"
                ) from None
            raise
        (staging / JOURNAL).unlink()  # swapped whole: nothing to put back any more


def recover(repo: Path) -> None:
    """Put back what a killed run's swap had moved (its ``swap.json``), then remove its staging folder."""
    for staging in sorted((repo / "p3").glob(STAGING + "*")):
        journal = staging / JOURNAL
        if journal.is_file():
            failed = put_back(json.loads(journal.read_text()))
            if failed:
                raise UserError(f"{staging}: an interrupted ship could not be put back ({', '.join(failed)})")
            print(f"put back the files of an interrupted ship ({staging.name})")
        shutil.rmtree(staging)


def ship(digits: Path, runs: Path, repo: Path = REPO) -> dict[str, Path]:
    """Check, stage and swap in; returns what ships (file name → run)."""
    if not runs.is_dir():
        raise UserError(f"{runs}: no such directory (expected recipes/p3_train_all.sh's RUNS_DIR)")
    recover(repo)
    picks, logged = plan(runs)
    found = check_runs(logged, digits, runs)
    if found:
        raise UserError("outside the protocol, nothing shipped: " + "; ".join(found))
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=repo / "p3"))
    keep = False
    try:
        stage(picks, logged, repo, staging)
        swap(repo, staging)
    except KeptStaging:
        keep = True
        raise
    finally:
        if not keep:
            with signals_held():
                shutil.rmtree(staging, ignore_errors=True)
    return picks


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="bash recipes/p3_ship.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("digits", type=Path, help="hw2_data/digits the runs trained on (mnistm/, svhn/, usps/)")
    p.add_argument("runs", type=Path, help="RUNS_DIR of recipes/p3_train_all.sh")
    p.add_argument("--repo", type=Path, default=REPO, help="checkout to ship into (default: this one)")
    args = p.parse_args(argv)
    picks = ship(args.digits, args.runs, args.repo)
    for domain in DOMAINS:
        print(f"{domain}_dann-plus: {picks[f'{domain}_dann-plus.pt'].name}")
    print(f"shipped {len(picks)} checkpoints and their logs; checkpoints.json rehashed")


if __name__ == "__main__":
    run_main(main)
