"""Train the conditional DDPM on MNIST-M (CPU, one GPU, or several with ``torchrun``).

    python -m p1.train --data-root hw2_data/digits/mnistm --out-dir runs/p1 --steps 8000
    torchrun --nproc_per_node 4 -m p1.train --data-root … --out-dir …   # DDP; --batch-size is per process

Resumes from ``<out-dir>/last.pt`` when it exists. Every ``--save-every`` steps it writes
``last.pt`` (full training state) and ``model.pt`` (EMA weights in fp16 + config: what
``hw2_1.sh`` loads). With ``--classifier`` and ``--real`` it also draws digits every ``--eval-every``
steps, with the model alone and with the shipped guidance, logs the grader's LeNet accuracy and our
Fréchet distance for both, and keeps the best EMA by both as ``best.pt`` (``p1/monitor.py``).

The loss is ε-MSE with min-SNR-γ weighting (``p1/losses.py``); ``--bf16`` runs forward and loss
under bf16 autocast (fp32 weights and optimiser), which pays on CPUs with AMX and on GPUs from
Ampere on; on a GPU without bf16 (T4, V100, RTX 20xx: the grader's card) it trains in plain fp32
instead, after one warning line (:func:`autocast_dtype`). Sampling is fp32.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, Optional, Sequence

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from hw2lib.checkpoints import half_state_dict, save_checkpoint
from hw2lib.cli import UserError, pick_device, require_positive, run_main, seed_everything
from hw2lib.digits import load_split
from hw2lib.images import uint8_to_signed
from hw2lib.metrics_log import append_metrics
from hw2lib.run_record import append_sitting, check_sitting, record_arguments
from hw2lib.schedule import NoiseSchedule
from hw2lib.training import TrainingClock, ema_update, init_from, resume_training, save_training_state

from .losses import diffusion_loss
from .model import ConditionalUNet, UNetConfig
from .monitor import Monitor
from .sampling import SamplingConfig


def build_parser() -> argparse.ArgumentParser:
    d = UNetConfig()
    p = argparse.ArgumentParser(
        prog="python -m p1.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-root", required=True, help="MNIST-M folder in the course layout (data/, train.csv)")
    p.add_argument("--out-dir", required=True, help="folder for last.pt, model.pt, best.pt and metrics.jsonl")
    p.add_argument("--steps", type=int, default=5000, help="total optimiser steps (the cosine LR spans them)")
    p.add_argument("--batch-size", type=int, default=128, help="images per step per process")
    p.add_argument("--lr", type=float, default=8e-4, help="peak AdamW learning rate")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the global gradient norm to this")
    p.add_argument("--warmup", type=int, default=200, help="linear LR warm-up steps")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay (ramped up from 0 early on)")
    p.add_argument("--p-uncond", type=float, default=0.1, help="probability of dropping the label (CFG training)")
    p.add_argument(
        "--min-snr-gamma", type=float, default=0.0, help="min-SNR-γ loss weighting (p1/losses.py); 0 = the simple loss"
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast for forward and loss (fp32 weights; pays on CPUs with AMX and Ampere+ GPUs); "
        "on a GPU without bf16 (T4, V100, RTX 20xx) it warns and trains in fp32",
    )
    p.add_argument("--channels", type=int, nargs="+", default=list(d.channels), help="UNet width per level")
    p.add_argument("--blocks-per-level", type=int, default=d.blocks_per_level, help="residual blocks per level")
    p.add_argument("--mid-blocks", type=int, default=d.mid_blocks, help="residual blocks at the lowest resolution")
    p.add_argument("--seed", type=int, default=0, help="seed for init, data order and noise")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1, …")
    p.add_argument("--save-every", type=int, default=250, help="write last.pt and model.pt every N steps")
    p.add_argument("--log-every", type=int, default=50, help="append a metrics line every N steps")
    p.add_argument("--classifier", help="the grader's LeNet (Classifier.pth); with --real: evaluate and keep best.pt")
    p.add_argument("--real", help="MNIST-M folder whose val split the evaluation's Fréchet distance compares with")
    p.add_argument("--eval-every", type=int, default=1000, help="with --classifier: evaluate every N steps")
    p.add_argument("--eval-per-class", type=int, default=50, help="with --classifier: digits drawn per class")
    p.add_argument(
        "--stop-after", type=int, help="stop this run after N steps (resume later; the LR schedule still spans --steps)"
    )
    p.add_argument(
        "--init-from", help="start a new run from an inference checkpoint's weights (model and EMA; fresh optimiser)"
    )
    p.add_argument("--limit", type=int, help="use only the first N training images (smoke tests)")
    p.add_argument(
        "--allow-changed-args",
        action="store_true",
        help="resume although training arguments differ from the run's record.jsonl (the change is recorded)",
    )
    return p


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then cosine decay to 0 at ``args.steps``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batch_indices(step: int, n: int, batch_size: int, rank: int, world: int, seed: int) -> torch.Tensor:
    """Indices of this rank's batch at ``step``: a pure function of (seed, step), so resuming is exact."""
    per_epoch = n // (batch_size * world)
    epoch, i = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[rank::world][i * batch_size : (i + 1) * batch_size]


def evaluate_and_keep_best(ema, schedule, monitor: Monitor, out_dir: Path, step: int, best: float):
    """Score the EMA (:class:`Monitor`); when it beats ``best``, save it as ``best.pt``. Returns (record, new best)."""
    score, record = monitor.evaluate(ema, schedule)
    if score > best:
        save_checkpoint(inference_checkpoint(ema, schedule, step, **record), out_dir / "best.pt")
    return record, max(score, best)


def inference_checkpoint(ema: ConditionalUNet, schedule: NoiseSchedule, step: int, **extra) -> dict:
    return {
        "model": half_state_dict(ema.state_dict()),
        "config": ema.config.to_dict(),
        "schedule": schedule.config(),
        "step": step,
        **extra,
    }


@dataclass
class Process:
    """Where this process trains: its device and its place among ``world`` DDP processes."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_process(device_name: str) -> Process:
    """One process, or (under torchrun) this process's rank: NCCL on GPUs, gloo on CPUs."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Process(pick_device(device_name))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    device = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return Process(device, dist.get_rank(), dist.get_world_size())


def autocast_dtype(device: torch.device, want_bf16: bool) -> Optional[torch.dtype]:
    """The dtype that training's forward and loss autocast to on ``device``: bf16 when ``--bf16``
    asks for it and the device has it (any CPU; a GPU whose ``torch.cuda.is_bf16_supported()``, the
    check torch's CUDA autocast itself makes), else None: plain fp32, no autocast."""
    if not want_bf16:
        return None
    if device.type == "cpu" or (device.type == "cuda" and gpu_has_bf16()):
        return torch.bfloat16
    # Without bf16 we train in fp32 rather than fp16 autocast. fp16 would be faster on a T4, but it
    # needs a GradScaler: its skipped steps, and its state in last.pt (which every existing last.pt
    # lacks), and fp16's narrow range is not the bf16 the recipe's stages were tuned under. fp32 is
    # always correct and resumes any last.pt; only training time is lost (the grader only samples).
    return None


def gpu_has_bf16() -> bool:
    """Whether the current GPU computes in bf16 natively. Newer torch counts emulated bf16 (slow, on
    cards before Ampere) unless asked not to; torch 2.0.1 has no such argument and counts native only."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:
        return torch.cuda.is_bf16_supported()


def bf16_fallback_warning(device: torch.device) -> str:
    """The one line that says ``--bf16`` trains in fp32 on ``device``, and why."""
    if device.type == "cuda":
        why = "this GPU has no bf16 (torch.cuda.is_bf16_supported() is False: cards before Ampere, e.g. T4, V100)"
    else:
        why = f"torch has no bf16 autocast on {device.type}"
    return f"warning: --bf16: {why}; training in fp32 instead (no autocast)"


def training_autocast(proc: Process, want_bf16: bool) -> Optional[torch.dtype]:
    """:func:`autocast_dtype` for this process's device; where ``--bf16`` falls back to fp32 the
    main process says so in one line on stderr (once per run, not once per step or per rank)."""
    dtype = autocast_dtype(proc.device, want_bf16)
    if want_bf16 and dtype is None and proc.is_main:
        print(bf16_fallback_warning(proc.device), file=sys.stderr, flush=True)
    return dtype


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> ContextManager:
    """Autocast to ``dtype`` on ``device``, or no autocast block at all for None. Never an
    ``enabled=False`` bf16 one: torch 2.0.1 checks the dtype even then, and raises on a GPU without bf16."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


@dataclass
class Parts:
    """The model being trained, its EMA (what ships) and the optimiser."""

    model: ConditionalUNet
    ema: ConditionalUNet
    optimizer: torch.optim.Optimizer

    def named(self) -> dict:
        return {"model": self.model, "ema": self.ema, "optimizer": self.optimizer}


def canonical_config(saved: dict) -> dict:
    """A stored UNet config in today's form (checkpoints written before ``mid_blocks`` existed hold 2)."""
    return UNetConfig.from_dict(saved).to_dict()


def build(args: argparse.Namespace, device: torch.device) -> Parts:
    """A fresh model (or one initialised from ``--init-from``), its EMA copy and AdamW."""
    config = UNetConfig(
        channels=tuple(args.channels), blocks_per_level=args.blocks_per_level, mid_blocks=args.mid_blocks
    )
    model = ConditionalUNet(config)
    if args.init_from:
        init_from(model, args.init_from, config.to_dict(), canonical=canonical_config)
    model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    return Parts(model, ema, optimizer)


def training_step(
    net,
    parts: Parts,
    schedule: NoiseSchedule,
    images,
    labels,
    step: int,
    args,
    proc: Process,
    amp_dtype: Optional[torch.dtype],
) -> float:
    """One optimiser step on this process's share of the global batch, forward and loss under
    autocast to ``amp_dtype`` (None: fp32; see :func:`autocast_dtype`); returns the loss."""
    idx = batch_indices(step, len(images), args.batch_size, proc.rank, proc.world, args.seed)
    x0 = uint8_to_signed(images[idx]).to(proc.device)
    if proc.device.type == "cpu":
        x0 = x0.contiguous(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step * 101 + proc.rank)
    for group in parts.optimizer.param_groups:
        group["lr"] = lr_at(step, args)
    y, gamma = labels[idx].to(proc.device), args.min_snr_gamma or None
    with autocast(proc.device, amp_dtype):
        loss = diffusion_loss(net, schedule, x0, y, args.p_uncond, gen, parts.model.null_label, gamma)
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parts.model.parameters(), args.grad_clip)
    parts.optimizer.step()
    ema_update(parts.ema, parts.model, min(args.ema_decay, (1 + step) / (10 + step)))
    return loss.item()


def build_monitor(args: argparse.Namespace) -> Optional[Monitor]:
    """The periodic evaluation (``--classifier`` with ``--real``), or None without them."""
    if bool(args.classifier) != bool(args.real):
        raise UserError("--classifier and --real go together (the evaluation scores accuracy and Fréchet distance)")
    return Monitor(args.classifier, args.real, SamplingConfig(), args.eval_per_class) if args.classifier else None


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    require_positive(
        args,
        "steps",
        "batch_size",
        "mid_blocks",
        "save_every",
        "log_every",
        "eval_every",
        "eval_per_class",
        "stop_after",
        "limit",
    )
    proc = setup_process(args.device)
    amp_dtype = training_autocast(proc, args.bf16)
    out_dir = Path(args.out_dir)
    seed_everything(args.seed)
    images, labels = load_split(args.data_root, "train", limit=args.limit)
    if len(images) < args.batch_size * proc.world:
        raise UserError(
            f"{args.data_root}: {len(images)} images is fewer than one global batch ({args.batch_size * proc.world})"
        )
    recorded = record_arguments(args)  # checked against the run's record before anything is written
    defaults = {k: build_parser().get_default(k) for k in vars(args)}  # what a flag added since ran as
    changed = check_sitting(out_dir, recorded, args.allow_changed_args, defaults)
    schedule, parts = NoiseSchedule(), build(args, proc.device)
    config = parts.model.config.to_dict()
    resumed = resume_training(out_dir, parts.named(), config, log=proc.is_main, canonical=canonical_config)
    step, best = (resumed["step"], resumed.get("best", -1e9)) if resumed else (0, -1e9)
    net = DistributedDataParallel(parts.model) if proc.distributed else parts.model
    monitor = build_monitor(args) if proc.is_main else None
    if proc.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        append_sitting(out_dir, recorded, step, changed)
        print(
            f"{sum(p.numel() for p in parts.model.parameters()) / 1e6:.2f}M parameters, {len(images)} images, "
            f"world size {proc.world}, device {proc.device}" + (f", resumed at step {step}" if resumed else "")
        )

    bar = tqdm(total=args.steps, initial=step, desc="p1 train", disable=not proc.is_main, dynamic_ncols=True)
    clock, running = TrainingClock(resumed), None  # elapsed_s counts every sitting, not only this one
    last_step = min(args.steps, step + args.stop_after) if args.stop_after else args.steps
    while step < last_step:
        loss = training_step(net, parts, schedule, images, labels, step, args, proc, amp_dtype)
        step += 1
        running = loss if running is None else 0.98 * running + 0.02 * loss
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}")
        if not proc.is_main:
            continue
        record = {}
        if step % args.log_every == 0 or step == args.steps:
            record = {"step": step, "loss": round(running, 5), "lr": lr_at(step - 1, args)}
        if monitor is not None and (step % args.eval_every == 0 or step == args.steps):
            evaluation, best = evaluate_and_keep_best(parts.ema, schedule, monitor, out_dir, step, best)
            record.update(step=step, **evaluation)
            bar.write(f"step {step}: {evaluation} (best score {best:.4f})")
        elapsed = clock.elapsed()  # after the evaluation: one value for the log and last.pt
        if record:
            append_metrics(out_dir, record | {"elapsed_s": elapsed})
        if step % args.save_every == 0 or step == last_step:
            save_training_state(
                out_dir,
                parts.named(),
                config=config,
                schedule=schedule.config(),
                step=step,
                best=best,
                elapsed_s=elapsed,
            )
            save_checkpoint(inference_checkpoint(parts.ema, schedule, step), out_dir / "model.pt")
    bar.close()
    if proc.distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    run_main(main)
