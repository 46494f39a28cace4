"""What both P3 training commands share: the target's data, the evaluation that selects ``best.pt``,
the common flags, and the loop that logs, evaluates and saves.

* ``python -m p3.train``  (p3/train.py): DANN from labelled source folders; source-only is DANN
  without the domain loss, target-only is the same trainer with the target as its source.
* ``python -m p3.refine`` (p3/refine.py): SHOT's target-only refinement of a trained checkpoint.

Every evaluation scores the network that would ship on the target's val split (what selects
``best.pt``, the course's protocol) and logs two numbers the selection never sees: accuracy on the
target's *train* split (its labels used only to score: a second check) and the label-free
``information_score`` of the target predictions (what a rule without target labels would pick).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch
from tqdm.auto import tqdm

from hw2lib.checkpoints import save_checkpoint
from hw2lib.digit_cnn import DigitClassifier, accuracy, penultimate_features
from hw2lib.digits import load_split
from hw2lib.metrics_log import append_metrics
from hw2lib.run_record import append_sitting, check_sitting, record_arguments
from hw2lib.training import TrainingClock, resume_training, save_training_state

from .pseudo_labels import information_score


@dataclass
class TargetData:
    """uint8 images (N, 3, 28, 28) and long labels (N,) of the target, on the CPU."""

    train_x: torch.Tensor  # unlabelled target train images
    train_y: torch.Tensor  # their labels: used only to score (the second check), never to train or select
    val_x: torch.Tensor  # target val split: model selection
    val_y: torch.Tensor


def load_target(root: str) -> TargetData:
    return TargetData(*load_split(root, "train"), *load_split(root, "val"))


def add_common_args(p: argparse.ArgumentParser, steps: int, lr: float) -> None:
    """The flags both commands take."""
    p.add_argument("--target", required=True, help="target folder (course layout), e.g. …/digits/usps")
    p.add_argument(
        "--out-dir",
        required=True,
        help="folder for last.pt, best.pt, metrics.jsonl and record.jsonl (one line a sitting)",
    )
    p.add_argument("--steps", type=int, default=steps, help="optimiser steps (the schedules span them)")
    p.add_argument("--batch-size", type=int, default=64, help="images per domain per step")
    p.add_argument("--lr", type=float, default=lr, help="μ0 of the annealed SGD learning rate")
    p.add_argument("--eval-every", type=int, default=250, help="evaluate on target val every N steps")
    p.add_argument(
        "--stop-after", type=int, help="stop this run after N steps (resume later; the schedules still span --steps)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for init, batches and augmentation")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    p.add_argument(
        "--allow-changed-args",
        action="store_true",
        help="resume although training arguments differ from the run's record.jsonl (the change is recorded)",
    )


@dataclass
class Evaluation:
    scores: dict  # val_accuracy (selects), target_train_accuracy and information_score (never select)
    model: DigitClassifier  # the network that was scored: what best.pt would hold
    probs: torch.Tensor  # its target-train probabilities (N, K) and features (N, D)
    features: torch.Tensor


def evaluate(model: DigitClassifier, data: TargetData) -> Evaluation:
    """Score the network that would ship (see the module docstring)."""
    probs, features = penultimate_features(model, data.train_x)
    scores = {
        "val_accuracy": accuracy(model, data.val_x, data.val_y),
        "target_train_accuracy": round((probs.argmax(1) == data.train_y).float().mean().item(), 5),
        "information_score": round(information_score(probs), 5),
    }
    return Evaluation(scores, model, probs, features)


@dataclass
class Run:
    """One training command's run: where it writes, what it resumes, and how it is scored."""

    out_dir: Path
    args: argparse.Namespace
    parts: Mapping[str, Any]  # name → module/optimiser kept in last.pt
    run_config: dict  # must match to resume
    target: str  # the target folder (its domain goes into best.pt)
    extra_state: Callable[[], dict] = dict  # more for last.pt (e.g. the current pseudo-labels)
    defaults: Optional[dict] = None  # the trainer's flag defaults: what a sitting logged before a flag existed ran

    def __post_init__(self) -> None:
        self.clock = TrainingClock()

    def resume(self) -> tuple[int, float, Optional[dict]]:
        """(step, best val accuracy, the resumed checkpoint or None); the clock continues the stored one.
        The sitting is checked against the run's record first (hw2lib/run_record.py), then appended to it."""
        recorded = record_arguments(self.args)
        changed = check_sitting(self.out_dir, recorded, self.args.allow_changed_args, self.defaults)
        resumed = resume_training(self.out_dir, self.parts, self.run_config)
        self.clock = TrainingClock(resumed)
        append_sitting(self.out_dir, recorded, resumed["step"] if resumed else 0, changed)
        if resumed:
            print(f"resumed from {self.out_dir / 'last.pt'} at step {resumed['step']}")
            return resumed["step"], resumed["best"], resumed
        return 0, -1.0, None

    def loop(
        self,
        step: int,
        best: float,
        train_step: Callable[[int], dict],
        shipped: Callable[[], DigitClassifier],
        on_evaluation: Callable[[int, Evaluation], None] = lambda step, ev: None,
        data: Optional[TargetData] = None,
    ) -> float:
        """Train from ``step`` to ``args.steps`` (or ``--stop-after`` steps more); every ``--eval-every``
        steps score ``shipped()``, keep it as ``best.pt`` when its val accuracy is the best so far,
        and save ``last.pt`` (also where the run stops). Logs every 50 steps and every evaluation to
        ``metrics.jsonl``. Returns the best accuracy."""
        args = self.args
        self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=args.steps, initial=step, desc=f"{Path(self.out_dir).name}", dynamic_ncols=True)
        last_step = min(args.steps, step + args.stop_after) if args.stop_after else args.steps
        while step < last_step:
            record = train_step(step)
            step += 1
            record["step"] = step
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", best=f"{best:.4f}")
            evaluated = step % args.eval_every == 0 or step == args.steps
            if evaluated:
                ev = evaluate(shipped(), data)
                on_evaluation(step, ev)
                record.update(ev.scores)
                acc = ev.scores["val_accuracy"]
                if acc > best:
                    best = acc
                    self.save_best(ev.model, step, acc)
                bar.write(f"step {step}: target val accuracy {acc:.4f} (best {best:.4f})")
            record["elapsed_s"] = self.clock.elapsed()  # after the evaluation: one value for the log and last.pt
            if evaluated or step == last_step:
                save_training_state(
                    self.out_dir,
                    self.parts,
                    **self.extra_state(),
                    config=self.run_config,
                    step=step,
                    best=best,
                    elapsed_s=record["elapsed_s"],
                )
            if step % 50 == 0 or evaluated:
                append_metrics(self.out_dir, record)
        bar.close()
        if step < args.steps:
            print(f"stopped at step {step} of {args.steps} (run again to resume): {self.out_dir / 'last.pt'}")
        else:
            print(f"best target val accuracy {best:.4f}: {self.out_dir / 'best.pt'}")
        return best

    def save_best(self, model: DigitClassifier, step: int, acc: float) -> None:
        ckpt = {
            "model": model.state_dict(),
            "config": model.config.to_dict(),
            "target": Path(self.target).resolve().name,
            "trainer": self.run_config["trainer"],
            "step": step,
            "val_accuracy": acc,
        }
        save_checkpoint(ckpt, self.out_dir / "best.pt")
