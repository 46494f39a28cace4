"""A training run's record: one JSON line per sitting in ``<out_dir>/record.jsonl``.

Each time a trainer starts (fresh or resuming from ``last.pt``) it appends what it was started with:
its arguments, the step it starts from, the commit of the code (and whether the checkout had
uncommitted changes), the start time and the machine. A resumed sitting must train with the same
arguments as the sitting before it: a difference in any argument that changes what is trained is
refused with one error line naming it, unless the sitting is started with ``--allow-changed-args``,
and then the change is written into its line. Where a run writes, on which device it runs and how
far one sitting goes, and how often P1's trainer saves and logs (``SITTING_ARGS``) may differ
between sittings.

Runs made before records existed kept only their last sitting's arguments, in ``args.json``; such a
run reads as one sitting of unknown commit, marked ``"converted_from": "args.json"``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Optional

import torch

from .cli import UserError

RECORD = "record.jsonl"
LEGACY = "args.json"
# may differ between sittings: where a run writes, on what, how far, and how often it saves and logs (P1)
SITTING_ARGS = ("out_dir", "device", "stop_after", "allow_changed_args", "save_every", "log_every")
REPO = Path(__file__).resolve().parents[1]


def read_record(out_dir: str | os.PathLike) -> list[dict]:
    """The run's sittings, oldest first (a legacy ``args.json`` as one converted sitting; [] for a new run)."""
    out_dir = Path(out_dir)
    if (out_dir / RECORD).is_file():
        return [json.loads(line) for line in (out_dir / RECORD).read_text().splitlines() if line.strip()]
    if (out_dir / LEGACY).is_file():
        return [{"sitting": 1, "args": json.loads((out_dir / LEGACY).read_text()), "converted_from": LEGACY}]
    return []


def training_args(args: dict) -> dict:
    """The arguments that decide what is trained (``SITTING_ARGS`` left out)."""
    return {k: v for k, v in args.items() if k not in SITTING_ARGS}


def changed_args(before: dict, now: dict) -> dict[str, list]:
    """``{flag: [before, now]}`` for every training argument that differs (absent counts as None)."""
    before, now = training_args(before), training_args(now)
    return {k: [before.get(k), now.get(k)] for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)}


def code_version(repo: Path = REPO) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout this code runs from."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout (a copied folder)
        return {"commit": None, "dirty": None}


def machine() -> dict:
    """Where the sitting runs: host, CPU model, cores and torch version (the device is in its arguments)."""
    cpu = platform.processor()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__}


def check_sitting(
    out_dir: str | os.PathLike, args: dict, allow_changes: bool = False, defaults: Optional[dict] = None
) -> dict[str, list]:
    """The training arguments that differ from the run's last sitting ({} for a new run). A flag the
    last sitting's line lacks (added to the trainer since) counts as its value in ``defaults``, what
    that sitting ran with. A difference is a UserError unless ``allow_changes``; nothing is written."""
    sittings = read_record(out_dir)
    if not sittings:
        return {}
    changed = changed_args({**(defaults or {}), **sittings[-1]["args"]}, args)
    if changed and not allow_changes:
        shown = ", ".join(f"--{k.replace('_', '-')} {old} → {new}" for k, (old, new) in changed.items())
        raise UserError(
            f"{out_dir}: its record says it was trained with other arguments ({shown}); resume with the same "
            "ones, use a new --out-dir, or add --allow-changed-args to resume and record the change"
        )
    return changed


def append_sitting(out_dir: str | os.PathLike, args: dict, step: int, changed: dict) -> Optional[dict]:
    """Append this sitting's line to ``record.jsonl`` (a legacy ``args.json`` becomes its first line).
    A sitting that starts where the run ends (``step`` ≥ its ``--steps``: a finished run started
    again) trains nothing and is not recorded; returns None then."""
    if args.get("steps") is not None and step >= args["steps"]:
        return None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sittings = read_record(out_dir)
    line = {
        "sitting": len(sittings) + 1,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "step": step,
        "args": args,
        **code_version(),
        "machine": machine(),
    }
    if changed:
        line["changed"] = changed
    new = [] if (out_dir / RECORD).is_file() else sittings  # the converted sitting is written out once
    with open(out_dir / RECORD, "a") as handle:
        for entry in [*new, line]:
            handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return line


def record_arguments(args: Any) -> dict:
    """An argparse namespace as the record stores it: data and checkpoint paths resolved (absolute, no
    ``..``, links followed), so the record names the folders that were read, wherever it is read from."""
    found = dict(vars(args))
    for key in ("source", "target", "init_from", "data_root", "real", "classifier"):
        value = found.get(key)
        if isinstance(value, list):
            found[key] = [os.path.realpath(v) if v else v for v in value]
        elif isinstance(value, str) and value:
            found[key] = os.path.realpath(value)
    return found
