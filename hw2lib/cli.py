"""Plumbing every entry point shares: user-facing errors, device choice and seeding."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import threading
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch


class UserError(Exception):
    """A problem with the user's input: reported as one line, never as a traceback."""


def run_main(main: Callable[[Optional[Sequence[str]]], None], argv: Optional[Sequence[str]] = None) -> None:
    """Run ``main(argv)``; a :class:`UserError` (or an ``OSError`` that escaped validation) becomes
    one ``error: …`` line on stderr and exit status 2; a closed stdout ends the run quietly.

    SIGTERM is turned into ``KeyboardInterrupt`` like Ctrl-C, so that both unwind through the
    ``finally`` blocks that remove temporary files and roll back half-moved outputs; both then
    exit with 128 + the signal number after one ``error: interrupted`` line.
    """
    received = []

    def on_sigterm(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        main(argv)
        sys.stdout.flush()  # a closed pipe (``… | true``) shows up here, inside the handlers below
    except BrokenPipeError:
        # The reader went away (``hw2_3.sh … | head``): the outputs are written; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # what validation could not foresee: too-long names, link loops, full disks, …
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"error: interrupted by {'SIGTERM' if received else 'SIGINT'}", file=sys.stderr)
        sys.exit(128 + (received[0] if received else signal.SIGINT))
    finally:
        signal.signal(signal.SIGTERM, previous)


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back inside the block and act on them when it ends, as the handlers in
    place before it would have: for clean-ups and swaps that must not themselves be cut short.

    The handlers are swapped for ones that only note the signal. A signal mask would not do: it is per
    thread, and a process-directed signal goes to any thread that does not block it (torch starts
    worker threads), whose C handler then has Python run the handler in the main thread mid-block.
    Outside the main thread, where handlers cannot be set, the block runs unguarded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, object]] = []
    previous = {s: signal.signal(s, lambda signum, frame: pending.append((signum, frame))) for s in HELD_SIGNALS}
    # a handler set outside Python reads as None and cannot be put back: the default stands in for it
    previous = {s: signal.SIG_DFL if h is None else h for s, h in previous.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum, frame in pending:
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def finite_or_error(x: torch.Tensor, what: str) -> torch.Tensor:
    """``x`` unchanged when every value is finite; otherwise a UserError (a model with NaN or
    infinite weights must not quietly write black images)."""
    if x.device.type != "meta" and not torch.isfinite(x).all():
        raise UserError(f"{what} produced NaN or infinite values: its weights are damaged or not a trained model")
    return x


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` → the GPU when there is one, else the CPU; otherwise any ``torch.device`` string."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but no CUDA GPU is available")
    return device


def exact_float32() -> None:
    """Deterministic cuDNN kernels and no TF32: inference gives the same bits on every run and
    computes in true float32 on any GPU, as the course's reference outputs were computed."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def require_positive(args: argparse.Namespace, *names: str) -> None:
    """A UserError naming the first of ``names`` (argparse dests) that was given and is below 1:
    step counts and intervals (``step % 0`` would end a run with a traceback)."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be ≥ 1 (got {value})")
