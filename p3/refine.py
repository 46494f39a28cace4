"""Refine a trained P3 classifier on the unlabelled target alone: SHOT's losses and a mean teacher.

    python -m p3.refine --init-from runs/p3/usps_dann-plus-first/best.pt --target hw2_data/digits/usps \
        --out-dir runs/p3/usps_dann-plus --consistency 1.0

The second step of DANN+ (the first is ``python -m p3.train``): no source image is seen again
(Liang et al. 2020, "Do we really need to access the source data?"). The student learns, on
perturbed target views (p3/augment.py), from three losses and an optional fourth (p3/pseudo_labels.py):

* pseudo-labels from SHOT's feature centroids over the whole target train split, recomputed every
  ``--relabel-every`` steps from the network that would ship (weight ``--pseudo-weight``);
* class balance KL(mean prediction ‖ uniform) (``--balance``), so it cannot collapse onto a class;
* the mean prediction entropy (``--entropy``): with the balance term, information maximisation;
* with ``--consistency`` > 0, the mean teacher's labels for the clean target images it is at least
  ``--confidence`` sure of, learnt on strong views of the same images (``strong_target_view``: stroke,
  blur and a cutout; FixMatch's consistency, with the teacher labelling instead of the student). The
  teacher normalises with the batch's statistics, no dropout, and its running statistics are left
  alone (labelling never changes it). The DANN+ recipes use it (recipes/p3_train_all.sh); 0, the
  default, is SHOT alone.

What is evaluated and shipped is a mean teacher (an EMA of the student, decay 0.99) with BatchNorm
statistics re-estimated on the target. Resumes from ``<out-dir>/last.pt`` (pseudo-labels included).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Optional, Sequence

import torch

from hw2lib.cli import pick_device, require_positive, run_main, seed_everything
from hw2lib.digit_cnn import DigitClassifier, adapt_batchnorm, load_digit_classifier, penultimate_features
from hw2lib.images import uint8_to_signed
from hw2lib.training import ema_update

from .augment import strong_target_view, target_view
from .dann import annealed_lr
from .pseudo_labels import (
    centroid_labels,
    class_balance_loss,
    confident_labels,
    mean_entropy,
    pseudo_label_loss,
)
from .train import ADAPT_BN_IMAGES
from .training import Evaluation, Run, TargetData, add_common_args, load_target

TEACHER_DECAY = 0.99  # EMA decay of the mean teacher


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p3.refine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--init-from", required=True, help="the checkpoint to refine (a best.pt of p3.train)")
    add_common_args(p, steps=2000, lr=0.005)
    p.add_argument("--pseudo-weight", type=float, default=0.3, help="weight of the centroid pseudo-label loss")
    p.add_argument("--balance", type=float, default=1.0, help="weight of the class-balance loss")
    p.add_argument("--entropy", type=float, default=1.0, help="weight of the mean prediction entropy")
    p.add_argument("--relabel-every", type=int, default=100, help="steps between centroid-label refreshes")
    p.add_argument(
        "--consistency", type=float, default=0.0, help="weight of the teacher's confident labels on strong views"
    )
    p.add_argument("--confidence", type=float, default=0.95, help="teacher confidence a label needs (--consistency)")
    return p


class Refiner:
    """The student, its mean teacher, and the current pseudo-labels of every target train image."""

    def __init__(self, args, student: DigitClassifier, target: TargetData, device: torch.device):
        self.args, self.student, self.target, self.device = args, student, target, device
        self.teacher = copy.deepcopy(student).requires_grad_(False)
        self.optimizer = torch.optim.SGD(student.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
        self.pseudo: Optional[torch.Tensor] = None
        self.evaluated: Optional[tuple[int, Evaluation]] = None  # the last evaluation, reused for labels

    def parts(self) -> dict:
        return {"model": self.student, "teacher": self.teacher, "optimizer": self.optimizer}

    def shipped(self) -> DigitClassifier:
        return adapt_batchnorm(self.teacher, self.target.train_x[:ADAPT_BN_IMAGES])

    def relabel(self, step: int) -> None:
        """Centroid labels from the shipped network's target features (the evaluation's, at the same step)."""
        if self.evaluated is not None and self.evaluated[0] == step:
            probs, features = self.evaluated[1].probs, self.evaluated[1].features
        else:
            probs, features = penultimate_features(self.shipped(), self.target.train_x)
        self.pseudo = centroid_labels(features, probs)

    def __call__(self, step: int) -> dict:
        args = self.args
        if self.pseudo is None or step % args.relabel_every == 0:
            self.relabel(step)
        lr = annealed_lr(step / args.steps, args.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        j = torch.randint(len(self.target.train_x), (args.batch_size,), generator=gen)
        xt = uint8_to_signed(self.target.train_x[j]).to(self.device)
        logits = self.student.train()(target_view(xt, gen, 0.0))[0]
        loss = (
            args.pseudo_weight * pseudo_label_loss(logits, self.pseudo[j].to(self.device))
            + args.balance * class_balance_loss(logits)
            + args.entropy * mean_entropy(logits)
        )
        if args.consistency > 0:
            labels, mask = confident_labels(self.teacher, xt, args.confidence)
            strong = self.student(strong_target_view(xt, gen))[0]
            loss = loss + args.consistency * pseudo_label_loss(strong, labels, mask)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        ema_update(self.teacher, self.student, TEACHER_DECAY)
        return {"lr": round(lr, 6), "loss": round(loss.item(), 4)}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    require_positive(args, "steps", "batch_size", "eval_every", "stop_after", "relabel_every")
    seed_everything(args.seed)
    device = pick_device(args.device)
    target = load_target(args.target)
    refiner = Refiner(args, load_digit_classifier(args.init_from, device), target, device)
    run_config = {"trainer": "p3.refine", "model": refiner.student.config.to_dict()}
    run = Run(
        Path(args.out_dir),
        args,
        refiner.parts(),
        run_config,
        args.target,
        lambda: {"pseudo_labels": refiner.pseudo},
        defaults={k: build_parser().get_default(k) for k in vars(args)},
    )
    step, best, resumed = run.resume()
    if resumed is not None:
        refiner.pseudo = resumed.get("pseudo_labels")

    def remember(step: int, evaluation: Evaluation) -> None:
        refiner.evaluated = (step, evaluation)

    run.loop(step, best, refiner, refiner.shipped, remember, data=target)


if __name__ == "__main__":
    run_main(main)
