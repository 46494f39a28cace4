"""Checkpoint files: atomic saves, ``weights_only`` loads, and strict state_dict checks that name keys.

A training checkpoint is a dict ``{"model", "ema", "config", "step", …}`` of state_dicts and plain
values; an inference checkpoint keeps ``{"model", "config"}`` (weights in fp16 where that loses
nothing). Models are rebuilt from ``config``, never from sizes restated in code.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .cli import UserError
from .files import replacing
from .manifest import verify_shipped


def save_checkpoint(obj: Mapping[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and ``os.replace``: a crash never leaves half a file."""
    with replacing(path) as tmp:
        torch.save(dict(obj), tmp)


def load_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors naming the file.

    A checkpoint listed in ``checkpoints.json`` must match its sha256 there first.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected a {what})")
    verify_shipped(path)
    try:
        with warnings.catch_warnings():  # the loader's own notes (TypedStorage, sparse checks) are not the user's
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise UserError(f"{path}: not a loadable {what} ({first[:200]})") from None


def load_checkpoint(path: str | os.PathLike, required: tuple[str, ...] = ("model", "config")) -> dict:
    """Load a checkpoint dict and check it holds ``required`` keys."""
    ckpt = load_file(path)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in required):
        raise UserError(f"{path}: not a checkpoint of this project (expected a dict with keys {list(required)})")
    return ckpt


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a UserError naming missing, unexpected and mis-shaped keys; silent when ``state`` fits ``model``."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{source}: not a state_dict (expected a dict of tensors)")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            problems.append(f"{len(keys)} {label} key(s): {shown}")
    if problems:
        raise UserError(f"{source}: state_dict does not fit {model.__class__.__name__}: " + "; ".join(problems))


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Check then load ``state`` into ``model`` (strict), casting to the model's dtypes."""
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)
    return model


def half_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp32 floating tensors → fp16 (other dtypes kept), for small inference checkpoints."""
    return {k: (v.half() if v.dtype == torch.float32 else v).clone() for k, v in state.items()}
