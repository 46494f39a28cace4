"""What both trainers share: the EMA update, saving and resuming ``last.pt`` (random generators
included), the training clock and starting from another run's weights. The metrics log is
hw2lib/metrics_log.py."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch
from torch import nn

from .checkpoints import load_checkpoint, load_weights, save_checkpoint
from .cli import UserError
from .metrics_log import drop_log_after


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay · ema + (1 − decay) · model, parameter by parameter (buffers are left alone)."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)


Canonical = Callable[[dict], dict]  # a stored config in today's form (fields added since filled with their defaults)


def _same(saved: dict, config: dict, canonical: Optional[Canonical]) -> bool:
    return (canonical(saved) if canonical else saved) == config


def resume_training(
    out_dir: str | os.PathLike,
    parts: Mapping[str, Any],
    config: dict,
    log: bool = True,
    canonical: Optional[Canonical] = None,
) -> Optional[dict]:
    """Restore ``parts`` (name → module or optimiser) from ``<out_dir>/last.pt`` when it exists.

    The stored ``config`` (through ``canonical`` when given) must equal ``config`` (a run is never
    resumed into another model); each part loads the state_dict stored under its name. Metrics logged after the checkpoint's step are
    dropped from ``metrics.jsonl`` (when ``log``) and the random generators continue from where the
    saving process left them (dropout draws from them). Returns the checkpoint (``step`` and the
    rest), or ``None`` when there is nothing to resume.
    """
    path = Path(out_dir) / "last.pt"
    if not path.exists():
        return None
    ckpt = load_checkpoint(path, required=("config", "step", *parts))
    if not _same(ckpt["config"], config, canonical):
        raise UserError(f"{path}: was trained with another configuration; use a new --out-dir")
    for name, part in parts.items():
        part.load_state_dict(ckpt[name])
    if "rng" in ckpt:
        set_rng_state(ckpt["rng"])
    if log:
        drop_log_after(Path(out_dir) / "metrics.jsonl", ckpt["step"])
    return ckpt


class TrainingClock:
    """Seconds of training across every sitting of a run: a resumed run continues from the
    ``elapsed_s`` its ``last.pt`` stored (0 for a fresh run or a checkpoint without one)."""

    def __init__(self, resumed: Optional[Mapping[str, Any]] = None) -> None:
        self.started = time.time() - (float(resumed.get("elapsed_s", 0.0)) if resumed else 0.0)

    def elapsed(self) -> float:
        """Training seconds so far, to 0.1 s (what ``metrics.jsonl`` and ``last.pt`` record as ``elapsed_s``)."""
        return round(time.time() - self.started, 1)


def init_from(model: nn.Module, path: str | os.PathLike, config: dict, canonical: Optional[Canonical] = None) -> dict:
    """Load an inference checkpoint's weights into ``model`` (same ``config`` required, the stored one
    through ``canonical`` when given); returns the checkpoint."""
    ckpt = load_checkpoint(path, required=("model", "config"))
    if not _same(ckpt["config"], config, canonical):
        raise UserError(f"{path}: holds a model of another configuration ({ckpt['config']} vs {config})")
    load_weights(model, ckpt["model"], str(path))
    return ckpt


def rng_state() -> dict:
    """The global CPU generator's state and every CUDA device's (an empty list without CUDA)."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``rng_state`` returned (the CUDA part only where the same number of devices is here)."""
    torch.set_rng_state(state["cpu"])
    if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(out_dir: str | os.PathLike, parts: Mapping[str, Any], **extra: Any) -> None:
    """Write ``<out_dir>/last.pt``: every part's state_dict under its name, the random generators'
    states (``rng``), plus ``extra`` (config, step, …)."""
    state = {name: part.state_dict() for name, part in parts.items()}
    save_checkpoint(state | {"rng": rng_state()} | extra, Path(out_dir) / "last.pt")
