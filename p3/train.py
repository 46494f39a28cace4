"""Train a digit classifier from labelled MNIST-M for an unlabelled target (USPS or SVHN).

    python -m p3.train --method dann --source hw2_data/digits/mnistm --target hw2_data/digits/usps --out-dir runs/p3/usps_dann

Methods (one CLI for the rows of the report's table):

* ``source-only``  cross-entropy on the source only (the lower bound);
* ``dann``         DANN (Ganin & Lempitsky, 2015): cross-entropy + a gradient-reversed domain
                   discriminator, λ_p and μ_p on the paper's schedules, inputs scaled to [−1, 1];
* ``dann-plus``    DANN + grayscale, per-image standardised input, per-domain batch statistics
                   (separate BN batches in training, target statistics at test time), source
                   augmentation towards the target's look (p3/augment.py), and self-training from
                   progress ``--self-train-from`` on: the student learns pseudo-labels on perturbed
                   target views, with a class-balance term (p3/pseudo_labels.py). The labels are
                   SHOT's feature centroids over the whole target train split, recomputed every
                   ``--relabel-every`` steps from the mean teacher (an EMA of the network), or,
                   with ``--pseudo-labels teacher``, the teacher's own confident labels. The
                   teacher is what gets evaluated and shipped;
* ``target-only``  cross-entropy on the labelled target train split (the upper bound).

The target's labels are used only by ``target-only`` and for model selection on the target's
val split (the course's protocol). Several ``--source`` folders are pooled into one labelled
source. Every evaluation also logs two numbers the selection never sees: accuracy on the target's
*train* split (its labels used only to score: a second check) and a label-free score of the target
predictions (``information_score``: what a rule without target labels would select on). Resumes
from ``<out-dir>/last.pt``; writes ``best.pt`` (the inference checkpoint ``hw2_3.sh`` loads) and
``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hw2lib.checkpoints import save_checkpoint
from hw2lib.cli import pick_device, run_main, seed_everything
from hw2lib.digit_cnn import ClassifierConfig, DigitClassifier, accuracy, adapt_batchnorm
from hw2lib.digits import load_split
from hw2lib.images import map_batches, uint8_to_signed
from hw2lib.training import ema_update, init_from, resume_training

from .augment import source_view, target_view
from .dann import DomainAdversarialLoss, DomainDiscriminator, adaptation_weight, annealed_lr
from .pseudo_labels import (
    centroid_labels,
    class_balance_loss,
    confident_labels,
    information_score,
    mean_entropy,
    pseudo_label_loss,
)
from .table import METHODS, target_domain

ADAPT_BN_IMAGES = 4096  # target train images whose statistics the evaluated dann-plus model uses


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p3.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--method", choices=METHODS, required=True, help="which row of the table to train")
    p.add_argument(
        "--source", required=True, nargs="+", help="labelled source folder(s) (course layout), e.g. …/digits/mnistm"
    )
    p.add_argument("--target", required=True, help="target folder (course layout), e.g. …/digits/usps")
    p.add_argument("--out-dir", required=True, help="folder for last.pt, best.pt and metrics.jsonl")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=64, help="images per domain per step")
    p.add_argument("--lr", type=float, default=0.01, help="μ0 of the annealed SGD learning rate")
    p.add_argument("--width", type=int, default=ClassifierConfig.width, help="CNN width")
    p.add_argument(
        "--normalize",
        choices=("channel", "image"),
        help="input normalisation: RGB to [−1, 1] (channel), or grayscale + per-image standardisation "
        "(image); default image for dann-plus, channel otherwise",
    )
    p.add_argument(
        "--pseudo-labels",
        choices=("centroid", "teacher"),
        default="centroid",
        help="dann-plus: SHOT feature-centroid labels of the whole target split, or the teacher's confident labels",
    )
    p.add_argument("--relabel-every", type=int, default=100, help="dann-plus: steps between centroid-label refreshes")
    p.add_argument(
        "--balance", type=float, default=1.0, help="dann-plus: weight of the class-balance loss on target views"
    )
    p.add_argument("--pseudo-weight", type=float, default=0.3, help="dann-plus: weight of the pseudo-label loss")
    p.add_argument(
        "--entropy", type=float, default=1.0, help="dann-plus: weight of the mean prediction entropy on target views"
    )
    p.add_argument(
        "--source-weight",
        type=float,
        default=0.0,
        help="dann-plus: weight of the source and domain losses once self-training runs (0: target only, as SHOT)",
    )
    p.add_argument(
        "--domain-weight", type=float, default=1.0, help="scale of DANN's domain loss (0 removes the adversary)"
    )
    p.add_argument(
        "--confidence", type=float, default=0.95, help="dann-plus --pseudo-labels teacher: confidence threshold"
    )
    p.add_argument(
        "--self-train-from", type=float, default=0.12, help="dann-plus: progress p at which self-training starts"
    )
    p.add_argument(
        "--stroke-aug", type=float, default=0.0, help="dann-plus: probability of stroke-width and blur augmentation"
    )
    p.add_argument("--teacher-decay", type=float, default=0.99, help="dann-plus: EMA decay of the mean teacher")
    p.add_argument("--init-from", help="start from an inference checkpoint (best.pt) of the same model configuration")
    p.add_argument("--eval-every", type=int, default=250, help="evaluate on target val every N steps")
    p.add_argument("--seed", type=int, default=0, help="seed for init, batches and augmentation")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    p.add_argument("--limit", type=int, help="use only the first N images of each split (smoke tests)")
    return p


@dataclass
class Data:
    """uint8 images (N, 3, 28, 28) and long labels (N,), on the CPU."""

    train_x: torch.Tensor  # labelled training images: the source, or the target for target-only
    train_y: torch.Tensor
    target_x: torch.Tensor  # unlabelled target train images
    target_y: torch.Tensor  # their labels: used only to score (the second check), never to train or select
    val_x: torch.Tensor  # target val split: model selection
    val_y: torch.Tensor


@dataclass
class Parts:
    """Everything a training step updates."""

    model: DigitClassifier
    discriminator: DomainAdversarialLoss
    optimizer: torch.optim.Optimizer
    teacher: Optional[DigitClassifier]  # dann-plus only


def method_config(method: str, width: int, normalize: Optional[str] = None) -> ClassifierConfig:
    """The classifier for a method: ``normalize`` is "channel" (RGB scaled to [−1, 1]) or "image"
    (grayscale, then per-image standardisation); by default "image" for dann-plus only."""
    per_image = (normalize or ("image" if method == "dann-plus" else "channel")) == "image"
    return ClassifierConfig(grayscale=per_image, standardize=per_image, width=width)


def load_data(args: argparse.Namespace) -> Data:
    sources = [load_split(root, "train", args.limit) for root in args.source]
    source_x, source_y = torch.cat([x for x, _ in sources]), torch.cat([y for _, y in sources])
    target_x, target_y = load_split(args.target, "train", args.limit)
    val_x, val_y = load_split(args.target, "val", args.limit)
    if args.method == "target-only":
        source_x, source_y = target_x, target_y
    return Data(source_x, source_y, target_x, target_y, val_x, val_y)


def build(args: argparse.Namespace, device: torch.device) -> Parts:
    config = method_config(args.method, args.width, args.normalize)
    model = DigitClassifier(config)
    if args.init_from:
        init_from(model, args.init_from, config.to_dict())
    model.to(device)
    discriminator = DomainAdversarialLoss(DomainDiscriminator(config.feature_dim)).to(device)
    params = list(model.parameters()) + list(discriminator.parameters())
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    teacher = copy.deepcopy(model).requires_grad_(False) if args.method == "dann-plus" else None
    return Parts(model, discriminator, optimizer, teacher)


def state_parts(parts: Parts) -> dict:
    """The modules and optimiser whose state_dicts ``last.pt`` keeps, by name."""
    named = {"model": parts.model, "discriminator": parts.discriminator, "optimizer": parts.optimizer}
    return named | ({"teacher": parts.teacher} if parts.teacher is not None else {})


def training_step(
    parts: Parts,
    data: Data,
    args: argparse.Namespace,
    step: int,
    device: torch.device,
    pseudo: Optional[torch.Tensor] = None,
) -> dict:
    """One SGD step at progress p = step / steps; returns the metrics to log. ``pseudo`` (N_target,)
    holds the current centroid labels of every target train image once self-training has begun."""
    p = step / args.steps
    lambd, lr = args.domain_weight * adaptation_weight(p), annealed_lr(p, args.lr)
    for group in parts.optimizer.param_groups:
        group["lr"] = lr
    gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    i = torch.randint(len(data.train_x), (args.batch_size,), generator=gen)
    j = torch.randint(len(data.target_x), (args.batch_size,), generator=gen)
    xs, ys = uint8_to_signed(data.train_x[i]).to(device), data.train_y[i].to(device)
    xt = uint8_to_signed(data.target_x[j]).to(device)
    model, plus = parts.model.train(), args.method == "dann-plus"
    record = {"step": step + 1, "lambda": round(lambd, 4), "lr": round(lr, 6)}
    if args.method in ("source-only", "target-only"):
        loss = F.cross_entropy(model(xs)[0], ys)
    else:
        self_train = plus and p >= args.self_train_from
        source_weight = args.source_weight if self_train else 1.0
        loss = torch.zeros((), device=device)
        if source_weight > 0:  # DANN: labelled source + gradient-reversed domain loss
            if plus:  # per-domain batch statistics: each domain goes through BN on its own
                (logits_s, f_s), (_, f_t) = model(source_view(xs, gen, args.stroke_aug)), model(xt)
            else:
                logits, feats = model(torch.cat([xs, xt]))
                logits_s, f_s, f_t = logits[: len(xs)], feats[: len(xs)], feats[len(xs) :]
            loss_d, acc_d = parts.discriminator(f_s, f_t, lambd)
            loss = source_weight * (F.cross_entropy(logits_s, ys) + loss_d)
            record["domain_acc"] = round(acc_d, 3)
        if self_train:
            loss = loss + self_training_loss(parts, xt, None if pseudo is None else pseudo[j], gen, args, record)
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    if parts.teacher is not None:
        ema_update(parts.teacher, model, args.teacher_decay)
    record["loss"] = round(loss.item(), 4)
    return record


def self_training_loss(
    parts: Parts,
    x_target: torch.Tensor,
    pseudo: Optional[torch.Tensor],
    gen: torch.Generator,
    args: argparse.Namespace,
    record: dict,
) -> torch.Tensor:
    """Pseudo-label cross-entropy of the student on perturbed views of ``x_target`` plus the
    weighted class-balance loss (and, with ``--entropy``, the mean prediction entropy). The labels
    are ``pseudo`` (centroid labels of these images) or, when it is None, the teacher's labels above
    ``args.confidence`` (logs the fraction kept)."""
    logits = parts.model(target_view(x_target, gen, args.stroke_aug))[0]
    if pseudo is None:
        labels, mask = confident_labels(parts.teacher, x_target, args.confidence)
        record["pseudo_frac"] = round(mask.mean().item(), 3)
    else:
        labels, mask = pseudo.to(logits.device), None
    loss = args.pseudo_weight * pseudo_label_loss(logits, labels, mask) + args.balance * class_balance_loss(logits)
    if args.entropy > 0:  # with the balance term: SHOT's information maximisation
        loss = loss + args.entropy * mean_entropy(logits)
    return loss


@torch.no_grad()
def target_predictions(model: DigitClassifier, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (N, K) and features (N, D), on the CPU, of ``model`` in eval mode."""
    model.eval()
    k = model.config.num_classes
    out = map_batches(lambda x: torch.cat(model(x), dim=1), images, 512, next(model.parameters()).device)
    return out[:, :k].softmax(1), out[:, k:]


def shipped_model(parts: Parts, data: Data) -> DigitClassifier:
    """The network that would ship: dann-plus's teacher with target BN statistics, else the model."""
    if parts.teacher is None:
        return parts.model
    return adapt_batchnorm(parts.teacher, data.target_x[:ADAPT_BN_IMAGES])


def evaluate(parts: Parts, data: Data) -> tuple[dict, DigitClassifier, tuple[torch.Tensor, torch.Tensor]]:
    """Scores of the network that would ship: target-val accuracy (what selects ``best.pt``), and,
    never used to select, target-train accuracy (second check) and the label-free information score.
    Also returns that network and its target-train (probabilities, features), which the centroid
    labels of the same step reuse."""
    scored = shipped_model(parts, data)
    probs, features = target_predictions(scored, data.target_x)
    scores = {
        "val_accuracy": accuracy(scored, data.val_x, data.val_y),
        "target_train_accuracy": round((probs.argmax(1) == data.target_y).float().mean().item(), 5),
        "information_score": round(information_score(probs), 5),
    }
    return scores, scored, (probs, features)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    seed_everything(args.seed)
    device = pick_device(args.device)
    out_dir = Path(args.out_dir)
    domain = target_domain(args.target)
    data = load_data(args)
    parts = build(args, device)
    config = parts.model.config.to_dict()
    run_config = {"model": config, "method": args.method}
    resumed = resume_training(out_dir, state_parts(parts), run_config)
    step, best = (resumed["step"], resumed["best"]) if resumed else (0, -1.0)
    pseudo = resumed.get("pseudo_labels") if resumed else None
    centroids = args.method == "dann-plus" and args.pseudo_labels == "centroid"
    self_train_step = math.ceil(args.self_train_from * args.steps)
    evaluated = None  # (step, target probabilities, features) of the shipped network at the last evaluation
    if resumed:
        print(f"resumed from {out_dir / 'last.pt'} at step {step}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "args.json").write_text(json.dumps(vars(args), indent=2))

    bar = tqdm(total=args.steps, initial=step, desc=f"p3 {args.method}", dynamic_ncols=True)
    started = time.time()
    while step < args.steps:
        if (
            centroids
            and step >= self_train_step
            and (pseudo is None or (step - self_train_step) % args.relabel_every == 0)
        ):  # centroid labels from the shipped network's features, computed once per step
            fresh = evaluated is not None and evaluated[0] == step
            probs, features = evaluated[1:] if fresh else target_predictions(shipped_model(parts, data), data.target_x)
            pseudo = centroid_labels(features, probs)
        record = training_step(parts, data, args, step, device, pseudo)
        step += 1
        record["elapsed_s"] = round(time.time() - started, 1)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", best=f"{best:.4f}")
        if step % args.eval_every == 0 or step == args.steps:
            scores, scored, predictions = evaluate(parts, data)
            evaluated = (step, *predictions)
            record.update(scores)
            acc = scores["val_accuracy"]
            if acc > best:
                best = acc
                best_ckpt = {"model": scored.state_dict(), "config": config, "method": args.method, "domain": domain}
                save_checkpoint(best_ckpt | {"step": step, "val_accuracy": acc}, out_dir / "best.pt")
            states = {name: part.state_dict() for name, part in state_parts(parts).items()}
            extra = {} if pseudo is None else {"pseudo_labels": pseudo}
            save_checkpoint(states | extra | {"config": run_config, "step": step, "best": best}, out_dir / "last.pt")
            bar.write(f"step {step}: target val accuracy {acc:.4f} (best {best:.4f})")
        if step % 50 == 0 or "val_accuracy" in record:
            with open(out_dir / "metrics.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
    bar.close()
    print(f"best target val accuracy {best:.4f}: {out_dir / 'best.pt'}")


if __name__ == "__main__":
    run_main(main)
