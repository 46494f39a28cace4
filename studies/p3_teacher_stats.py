"""How confident, and how right, a shipped P3 mean teacher is with the statistics it labels with
versus the statistics it ships with.

    python studies/p3_teacher_stats.py p3/checkpoints/usps_dann-plus.pt hw2_data/digits/usps

During refinement (``python -m p3.refine --consistency …``) the teacher labels each 64-image target
batch with *that batch's* BatchNorm statistics (``p3.pseudo_labels.confident_labels``); the network
that ships is the same teacher with statistics re-estimated over the first 4,096 target train images
(AdaBN, ``hw2lib.digit_cnn.adapt_batchnorm``), which is what a shipped checkpoint stores and what
eval mode uses. This measures, on the target's *train* split (its labels used only to score), the
fraction of images the teacher is at least ``--confidence`` sure of and the accuracy of those
confident labels (and of all labels), two ways:

* ``batch``: every image labelled once, in seeded random batches of ``--batch-size`` (a random
  permutation; the last, short batch is filled up with other random images, which are not counted);
  BatchNorm uses each batch's statistics, dropout off, as ``confident_labels`` does;
* ``shipped``: the checkpoint in eval mode, with the statistics it stores.

It measures the *final* teacher (the checkpoint), not the teachers of earlier refinement steps.
Markdown on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch

from hw2lib.cli import pick_device, run_main
from hw2lib.digit_cnn import batch_statistics, load_digit_classifier, penultimate_features
from hw2lib.digits import load_split
from hw2lib.images import uint8_to_signed
from p3.pseudo_labels import confident_labels


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python studies/p3_teacher_stats.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="a shipped P3 checkpoint, e.g. p3/checkpoints/usps_dann-plus.pt")
    p.add_argument("target", help="its target folder (course layout), e.g. …/digits/usps")
    p.add_argument("--confidence", type=float, default=0.95, help="the teacher confidence a label needs")
    p.add_argument("--batch-size", type=int, default=64, help="images per labelling batch (training's: 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random batches")
    p.add_argument("--device", default="cpu", help="cpu, cuda, or auto")
    return p


@torch.no_grad()
def batch_statistics_probs(model, images: torch.Tensor, batch_size: int, seed: int, confidence: float) -> torch.Tensor:
    """(N, K) softmax of every uint8 image, each labelled once inside a seeded random batch that is
    normalised with its own statistics (``confident_labels``' way)."""
    n, k = len(images), model.config.num_classes
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    probs = torch.empty(n, k)
    device = next(model.parameters()).device
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        short = len(idx)
        if short < batch_size and n >= batch_size:  # fill the last batch up with other images, not counted
            others = order[:start][torch.randperm(start, generator=gen)[: batch_size - short]]
            idx = torch.cat([idx, others])
        x = uint8_to_signed(images[idx]).to(device)
        with batch_statistics(model):  # what confident_labels runs the teacher in
            p = model(x)[0].softmax(1).cpu()
        labels, mask = confident_labels(model, x, confidence)  # what training takes: the same labels
        assert torch.equal(p.argmax(1), labels.cpu())
        assert torch.equal((p.max(1).values >= confidence).float(), mask.cpu())
        probs[idx[:short]] = p[:short]
    return probs


def row(name: str, probs: torch.Tensor, truth: torch.Tensor, confidence: float) -> str:
    conf, labels = probs.max(1)
    kept = conf >= confidence
    frac = kept.float().mean().item()
    acc_kept = (labels[kept] == truth[kept]).float().mean().item() if kept.any() else float("nan")
    acc_all = (labels == truth).float().mean().item()
    return f"| {name} | {int(kept.sum())}/{len(truth)} = {frac:.4f} | {acc_kept:.4f} | {acc_all:.4f} |"


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    device = pick_device(args.device)
    model = load_digit_classifier(args.checkpoint, device)
    images, truth = load_split(args.target, "train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = batch_statistics_probs(model, images, args.batch_size, args.seed, args.confidence)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "labelling changed the model"
    shipped, _ = penultimate_features(model.eval(), images)
    print(f"{args.checkpoint} on {args.target} train ({len(truth)} images), confidence >= {args.confidence}")
    print()
    print("| statistics | confident | accuracy of confident labels | accuracy of all labels |")
    print("|---|---|---|---|")
    print(row(f"batch ({args.batch_size} random images, seed {args.seed})", batch, truth, args.confidence))
    print(row("shipped (eval mode, stored AdaBN)", shipped, truth, args.confidence))


if __name__ == "__main__":
    run_main(main)
