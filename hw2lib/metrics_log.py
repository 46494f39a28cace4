"""The JSON-lines metrics log every training run writes (``<out-dir>/metrics.jsonl``) and every
table is re-derived from. Standard library only, so the bench tables read logs without torch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional


def append_metrics(out_dir: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``<out_dir>/metrics.jsonl``."""
    with open(Path(out_dir) / "metrics.jsonl", "a") as log:
        log.write(json.dumps(dict(record)) + "\n")


def read_metrics(log: str | os.PathLike, having: Optional[str] = None) -> list[dict]:
    """The records of a metrics.jsonl in order (blank lines skipped); with ``having``, only those
    that hold that key (e.g. the evaluations among the loss lines)."""
    records = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    return [r for r in records if having is None or having in r]


def drop_log_after(log: str | os.PathLike, step: int) -> None:
    """On resume: forget the records past ``step`` (written after the checkpoint resumed from)."""
    log = Path(log)
    if log.exists():  # the kept lines stay byte for byte
        kept = [line for line in log.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        log.write_text("".join(line + "\n" for line in kept))
