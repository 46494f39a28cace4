"""Train a digit classifier on labelled source folders with DANN towards an unlabelled target.

    python -m p3.train --source hw2_data/digits/mnistm --target hw2_data/digits/usps --out-dir runs/p3/usps_dann

DANN (Ganin & Lempitsky, 2015): cross-entropy on the labelled source plus a gradient-reversed domain
discriminator on source and target features, with λ_p and μ_p on the paper's schedules. The table's
other rows are the same trainer:

* source-only:  ``--domain-weight 0`` (the target is only evaluated on);
* target-only:  ``--source`` the target folder itself and ``--domain-weight 0`` (the upper bound).

Options towards the target's look: ``--normalize image`` (grayscale, per-image standardisation),
``--per-domain-bn`` (each domain goes through BatchNorm on its own; the evaluated network uses the
target's statistics) and ``--augment P`` (geometric jitter, polarity and, with probability P, stroke
width and blur on the source, p3/augment.py). Several ``--source`` folders are pooled into one.
The target's labels are used only for model selection on its val split (and the second check, see
p3/training.py). Resumes from ``<out-dir>/last.pt``; writes ``best.pt`` and ``metrics.jsonl``.
The SHOT refinement of a trained checkpoint is ``python -m p3.refine``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from hw2lib.cli import pick_device, require_positive, run_main, seed_everything
from hw2lib.digit_cnn import ClassifierConfig, DigitClassifier, adapt_batchnorm
from hw2lib.digits import load_split
from hw2lib.images import uint8_to_signed

from .augment import source_view
from .dann import DomainAdversarialLoss, DomainDiscriminator, adaptation_weight, annealed_lr
from .pseudo_labels import mean_entropy
from .training import Run, TargetData, add_common_args, load_target

ADAPT_BN_IMAGES = 4096  # target train images whose statistics a --per-domain-bn network is evaluated with


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p3.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--source", required=True, nargs="+", help="labelled source folder(s) (course layout), e.g. …/digits/mnistm"
    )
    add_common_args(p, steps=3000, lr=0.01)
    p.add_argument("--width", type=int, default=ClassifierConfig.width, help="CNN width")
    p.add_argument(
        "--normalize",
        choices=("channel", "image"),
        default="channel",
        help="input normalisation: RGB to [−1, 1] (channel), or grayscale + per-image standardisation (image)",
    )
    p.add_argument(
        "--domain-weight", type=float, default=1.0, help="scale of the domain loss (0: no adversary, no target batch)"
    )
    p.add_argument("--per-domain-bn", action="store_true", help="separate BatchNorm batches for source and target")
    p.add_argument(
        "--augment", type=float, metavar="P", help="augment the source; P = probability of stroke-width and blur"
    )
    p.add_argument(
        "--neighbours",
        type=float,
        default=0.0,
        metavar="P",
        help="with --augment: paste parts of other digits beside the source digit, each side with probability P",
    )
    p.add_argument(
        "--target-entropy",
        type=float,
        default=0.0,
        help="weight of the target's conditional entropy (VADA's, Shu et al. 2018): confident target predictions",
    )
    return p


def classifier_config(args: argparse.Namespace) -> ClassifierConfig:
    per_image = args.normalize == "image"
    return ClassifierConfig(grayscale=per_image, standardize=per_image, width=args.width)


def load_source(roots: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    splits = [load_split(root, "train") for root in roots]
    return torch.cat([x for x, _ in splits]), torch.cat([y for _, y in splits])


class DANNStep:
    """One SGD step at progress p = step / steps on a source batch and (with the adversary) a target batch."""

    def __init__(self, args, model, discriminator, optimizer, source, target: TargetData, device):
        self.args, self.model, self.discriminator, self.optimizer = args, model, discriminator, optimizer
        self.source_x, self.source_y = source
        self.target_x, self.device = target.train_x, device

    def __call__(self, step: int) -> dict:
        args, model = self.args, self.model.train()
        p = step / args.steps
        lambd, lr = args.domain_weight * adaptation_weight(p), annealed_lr(p, args.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        i = torch.randint(len(self.source_x), (args.batch_size,), generator=gen)
        j = torch.randint(len(self.target_x), (args.batch_size,), generator=gen)
        xs, ys = uint8_to_signed(self.source_x[i]).to(self.device), self.source_y[i].to(self.device)
        if args.augment is not None:
            xs = source_view(xs, gen, args.augment, args.neighbours)
        record = {"lambda": round(lambd, 4), "lr": round(lr, 6)}
        if args.domain_weight == 0:
            loss = F.cross_entropy(model(xs)[0], ys)
        else:
            xt = uint8_to_signed(self.target_x[j]).to(self.device)
            if args.per_domain_bn:  # each domain goes through BN on its own
                (logits_s, f_s), (logits_t, f_t) = model(xs), model(xt)
            else:
                logits, feats = model(torch.cat([xs, xt]))
                logits_s, f_s = logits[: len(xs)], feats[: len(xs)]
                logits_t, f_t = logits[len(xs) :], feats[len(xs) :]
            loss_d, acc_d = self.discriminator(f_s, f_t, lambd)
            loss = F.cross_entropy(logits_s, ys) + loss_d
            if args.target_entropy > 0:
                loss = loss + args.target_entropy * mean_entropy(logits_t)
            record["domain_acc"] = round(acc_d, 3)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return record | {"loss": round(loss.item(), 4)}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    require_positive(args, "steps", "batch_size", "eval_every", "stop_after", "width")
    seed_everything(args.seed)
    device = pick_device(args.device)
    source, target = load_source(args.source), load_target(args.target)
    model = DigitClassifier(classifier_config(args)).to(device)
    discriminator = DomainAdversarialLoss(DomainDiscriminator(model.config.feature_dim)).to(device)
    params = list(model.parameters()) + list(discriminator.parameters())
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    parts = {"model": model, "discriminator": discriminator, "optimizer": optimizer}
    config = {"trainer": "p3.train", "model": model.config.to_dict()}
    defaults = {k: build_parser().get_default(k) for k in vars(args)}
    run = Run(Path(args.out_dir), args, parts, config, args.target, defaults=defaults)
    step, best, _ = run.resume()

    def shipped() -> DigitClassifier:
        return adapt_batchnorm(model, target.train_x[:ADAPT_BN_IMAGES]) if args.per_domain_bn else model

    run.loop(step, best, DANNStep(args, model, discriminator, optimizer, source, target, device), shipped, data=target)


if __name__ == "__main__":
    run_main(main)
