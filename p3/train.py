"""Train a digit classifier from labelled MNIST-M for an unlabelled target (USPS or SVHN).

    python -m p3.train --method dann --source hw2_data/digits/mnistm --target hw2_data/digits/usps --out-dir runs/p3/usps_dann

Methods (one CLI for the rows of the report's table):

* ``source-only``  cross-entropy on MNIST-M only (the lower bound);
* ``dann``         plain DANN: cross-entropy + a gradient-reversed domain discriminator;
* ``dann-plus``    DANN + grayscale, per-image standardised input, per-domain batch statistics
                   (separate BN batches in training, target statistics at test time), affine /
                   polarity augmentation, and self-training on the target from a mean teacher
                   (an EMA of the network whose confident predictions become pseudo-labels; the
                   teacher is what gets evaluated and shipped);
* ``target-only``  cross-entropy on the labelled target train split (the upper bound).

The target's labels are used only by ``target-only`` and for model selection on the target's
val split (the course's protocol). Resumes from ``<out-dir>/last.pt``; writes ``best.pt`` (the
inference checkpoint ``hw2_3.sh`` loads) and ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from hw2lib.checkpoints import drop_log_after, load_checkpoint, save_checkpoint
from hw2lib.cli import UserError, pick_device, run_main, seed_everything
from hw2lib.digits import load_split, to_signed

from .dann import DomainAdversarialLoss, DomainDiscriminator, adaptation_weight, annealed_lr
from .model import ClassifierConfig, DigitClassifier, predict_labels

METHODS = ("source-only", "dann", "dann-plus", "target-only")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p3.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--method", choices=METHODS, required=True, help="which row of the table to train")
    p.add_argument("--source", required=True, help="labelled source folder (course layout), e.g. …/digits/mnistm")
    p.add_argument("--target", required=True, help="target folder (course layout), e.g. …/digits/usps")
    p.add_argument("--out-dir", required=True, help="folder for last.pt, best.pt and metrics.jsonl")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=64, help="images per domain per step")
    p.add_argument("--lr", type=float, default=0.01, help="μ0 of the annealed SGD learning rate")
    p.add_argument("--width", type=int, default=ClassifierConfig.width, help="CNN width")
    p.add_argument("--confidence", type=float, default=0.95, help="dann-plus: pseudo-label confidence threshold")
    p.add_argument(
        "--self-train-from", type=float, default=0.3, help="dann-plus: progress p at which self-training starts"
    )
    p.add_argument("--teacher-decay", type=float, default=0.99, help="dann-plus: EMA decay of the mean teacher")
    p.add_argument("--eval-every", type=int, default=250, help="evaluate on target val every N steps")
    p.add_argument("--seed", type=int, default=0, help="seed for init, batches and augmentation")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    p.add_argument("--limit", type=int, help="use only the first N images of each split (smoke tests)")
    p.add_argument("--dry-run", action="store_true", help="2 steps on 256 images per split, then stop")
    return p


def augment(x: torch.Tensor, gen: torch.Generator, invert: bool) -> torch.Tensor:
    """Random affine and, with ``invert``, random polarity; x is (B, C, H, W) in [−1, 1].

    Zoom 0.9–1.45 with ±15% aspect jitter, ±12° rotation and ±10% shift: MNIST-M digits sit in a
    20×20 box inside 28×28, while USPS and SVHN digits fill the frame, so zooming in matters most.
    """
    n = x.shape[0]
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=gen)  # noqa: E731
    zoom, aspect, angle = u(0.9, 1.45), u(0.85, 1.15), u(-12, 12) * math.pi / 180
    sx, sy = zoom * aspect.sqrt(), zoom / aspect.sqrt()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos() / sx, -angle.sin() / sx
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin() / sy, angle.cos() / sy
    theta[:, :, 2] = torch.stack([u(-0.1, 0.1), u(-0.1, 0.1)], dim=1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)  # border: keep the background
    if invert:
        flip = (torch.rand(n, generator=gen) < 0.5).to(x.device).view(-1, 1, 1, 1)
        x = torch.where(flip, -x, x)
    return x


def batch_statistics_mode(model: nn.Module) -> nn.Module:
    """BatchNorm normalises with the batch's own statistics, dropout is off: how the teacher labels a target batch."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.lerp_(s, 1.0 - decay)


@torch.no_grad()
def adapt_batchnorm(model: DigitClassifier, images: torch.Tensor, batch_size: int = 256) -> DigitClassifier:
    """A copy of ``model`` whose BatchNorm statistics are re-estimated on ``images`` (AdaBN)."""
    adapted = copy.deepcopy(model)
    for m in adapted.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
    adapted.train()
    device = next(model.parameters()).device
    for chunk in images.split(batch_size):
        adapted(to_signed(chunk).to(device))
    return adapted.eval()


@torch.no_grad()
def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (predict_labels(model, images) == labels).float().mean().item()


def method_config(method: str, width: int) -> ClassifierConfig:
    plus = method == "dann-plus"
    return ClassifierConfig(grayscale=plus, standardize=plus, width=width)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    if args.dry_run:
        args.steps, args.limit, args.eval_every = 2, args.limit or 256, 1
    seed_everything(args.seed)
    device = pick_device(args.device)
    out_dir = Path(args.out_dir)
    plus = args.method == "dann-plus"

    source_x, source_y = load_split(args.source, "train", args.limit)
    target_x, target_y = load_split(args.target, "train", args.limit)
    val_x, val_y = load_split(args.target, "val", args.limit)
    train_x, train_y = (target_x, target_y) if args.method == "target-only" else (source_x, source_y)

    config = method_config(args.method, args.width)
    model = DigitClassifier(config).to(device)
    domain_loss = DomainAdversarialLoss(DomainDiscriminator(config.feature_dim)).to(device)
    params = list(model.parameters()) + list(domain_loss.parameters())
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    teacher = copy.deepcopy(model).requires_grad_(False) if plus else None
    step, best = 0, -1.0
    if (out_dir / "last.pt").exists():
        ckpt = load_checkpoint(out_dir / "last.pt", required=("model", "domain", "optimizer", "config", "step"))
        if ckpt["config"] != config.to_dict() or ckpt.get("method") != args.method:
            raise UserError(f"{out_dir / 'last.pt'}: was trained with another method or model; use a new --out-dir")
        model.load_state_dict(ckpt["model"])
        domain_loss.load_state_dict(ckpt["domain"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if teacher is not None:
            teacher.load_state_dict(ckpt["teacher"])
        step, best = ckpt["step"], ckpt["best"]
        drop_log_after(out_dir / "metrics.jsonl", step)
        print(f"resumed from {out_dir / 'last.pt'} at step {step}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "args.json").write_text(json.dumps(vars(args), indent=2))
    domain = (
        "svhn"
        if "svhn" in str(args.target).lower()
        else "usps"
        if "usps" in str(args.target).lower()
        else Path(args.target).name
    )

    def evaluate() -> tuple[float, DigitClassifier]:
        scored = adapt_batchnorm(teacher, target_x[:4096]) if plus else model
        return accuracy(scored, val_x, val_y), scored

    bar = tqdm(total=args.steps, initial=step, desc=f"p3 {args.method}", dynamic_ncols=True)
    started = time.time()
    while step < args.steps:
        p = step / args.steps
        lambd = adaptation_weight(p)
        for group in optimizer.param_groups:
            group["lr"] = annealed_lr(p, args.lr)
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        i = torch.randint(len(train_x), (args.batch_size,), generator=gen)
        j = torch.randint(len(target_x), (args.batch_size,), generator=gen)
        xs, ys = to_signed(train_x[i]).to(device), train_y[i].to(device)
        xt = to_signed(target_x[j]).to(device)
        if plus:
            xs = augment(xs, gen, invert=True)
        model.train()
        record = {"step": step + 1, "lambda": round(lambd, 4)}
        if args.method in ("source-only", "target-only"):
            loss = F.cross_entropy(model(xs)[0], ys)
        else:
            if plus:  # per-domain batch statistics: each domain goes through BN on its own
                (logits_s, f_s), (_, f_t) = model(xs), model(xt)
            else:
                logits, feats = model(torch.cat([xs, xt]))
                logits_s, f_s, f_t = logits[: len(xs)], feats[: len(xs)], feats[len(xs) :]
            loss_d, acc_d = domain_loss(f_s, f_t, lambd)
            loss = F.cross_entropy(logits_s, ys) + loss_d
            record["domain_acc"] = round(acc_d, 3)
            if plus and p >= args.self_train_from:
                with torch.no_grad():
                    probs = batch_statistics_mode(teacher)(xt)[0].softmax(1)
                conf, pseudo = probs.max(1)
                mask = (conf >= args.confidence).float()
                per_sample = F.cross_entropy(model(augment(xt, gen, invert=True))[0], pseudo, reduction="none")
                loss = loss + (per_sample * mask).mean()
                record["pseudo_frac"] = round(mask.mean().item(), 3)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if teacher is not None:
            ema_update(teacher, model, args.teacher_decay)
        step += 1
        record.update(
            loss=round(loss.item(), 4), lr=round(annealed_lr(p, args.lr), 6), elapsed_s=round(time.time() - started, 1)
        )
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", best=f"{best:.4f}")
        if step % args.eval_every == 0 or step == args.steps:
            acc, scored = evaluate()
            record["val_accuracy"] = acc
            if acc > best:
                best = acc
                save_checkpoint(
                    {
                        "model": scored.state_dict(),
                        "config": config.to_dict(),
                        "method": args.method,
                        "domain": domain,
                        "step": step,
                        "val_accuracy": acc,
                    },
                    out_dir / "best.pt",
                )
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "domain": domain_loss.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "teacher": teacher.state_dict() if teacher is not None else {},
                    "config": config.to_dict(),
                    "method": args.method,
                    "step": step,
                    "best": best,
                },
                out_dir / "last.pt",
            )
            bar.write(f"step {step}: target val accuracy {acc:.4f} (best {best:.4f})")
        if step % 50 == 0 or "val_accuracy" in record:
            with open(out_dir / "metrics.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
    bar.close()
    print(f"best target val accuracy {best:.4f}: {out_dir / 'best.pt'}")


if __name__ == "__main__":
    run_main(main)
