"""Choose P1's solver, steps, guidance scale, rescale and guidance interval by measurement.

    python studies/p1_sweep.py --classifier Classifier.pth --real hw2_data/digits/mnistm \
        --solvers dpm++2m --steps 10 --guidance 1 3 5 --rescale 1 --intervals all 0:600 --log runs/p1_front.jsonl

For every combination it draws ``--per-class`` digits per class with the checkpoint, from each of
``--seeds`` (seed 0 is hw2_1.sh's), and prints the grader-LeNet accuracy, the worst digit, the
Fréchet distance to MNIST-M val with its floor (``--real``; p1/evaluate.py) and the wall time, as a
Markdown table; ``--log`` appends every row as JSON (``studies/p1_front.py`` draws the front from it).
An interval ``LO:HI`` applies guidance only at timesteps LO ≤ t ≤ HI (``all``: every step). The
front is chosen at seed 0; ``--seeds 1 2 …`` then checks the chosen settings on starting noises the
choice never saw (``studies/p1_front.py`` prints them as the seed spread). ``--solvers ddim --etas …``
tries stochastic DDIM (η > 0: fresh noise at every step, from a generator seeded with the row's seed
plus ``ETA_NOISE_OFFSET``, a stream apart from the starting noise's, so a row repeats); rows with η
other than 0 are logged with it.

``--weak CKPT --autoguidance A …`` adds autoguidance (Karras et al. 2024, "Guiding a diffusion model
with a bad version of itself"): the conditional prediction is pushed away from a weaker model's,
eps = eps_weak + a · (eps − eps_weak), at every step; classifier-free guidance, when s > 1, then
works on that prediction. It is a study, not a shipped setting: it needs a second network.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw2lib.cli import pick_device
from hw2lib.images import signed_to_uint8
from p1.classifier import load_lenet
from p1.evaluate import load_real, score_digits
from p1.sampling import DEFAULT_CHECKPOINT, SOLVERS, SamplingConfig, draw_digits, load_model

ETA_NOISE_OFFSET = 1_000_003  # the per-step noise of DDIM η > 0 is seeded with this + the row's seed


class AutoGuided(torch.nn.Module):
    """``model(x, t, y)`` with the labelled rows autoguided by ``weak``: eps_weak + a · (eps − eps_weak).
    Rows with the "no class" label stay the strong model's own, so classifier-free guidance on top
    (p1.sampling.ClassifierFreeGuidance, which asks for both in one batch) keeps its unconditional branch."""

    def __init__(self, model: torch.nn.Module, weak: torch.nn.Module, weight: float):
        super().__init__()
        self.model, self.weak, self.weight = model, weak, weight
        self.null_label = model.null_label

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        eps = self.model(x, t, y)
        rows = (y != self.null_label).nonzero().flatten()
        if len(rows):
            eps_weak = self.weak(x[rows], t[rows], y[rows])
            eps = eps.index_copy(0, rows, eps_weak + self.weight * (eps[rows] - eps_weak))
        return eps


def interval(text: str):
    if text == "all":
        return None
    lo, hi = (int(v) for v in text.split(":"))
    return (lo, hi)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="P1 checkpoint")
    p.add_argument("--classifier", required=True, help="the grader's LeNet (Classifier.pth)")
    p.add_argument("--solvers", nargs="+", choices=SOLVERS, default=["dpm++2m"], help="samplers to try")
    p.add_argument("--steps", type=int, nargs="+", default=[10], help="step counts to try")
    p.add_argument(
        "--etas", type=float, nargs="+", default=[0.0], help="DDIM η values (0: deterministic; others skip dpm++2m)"
    )
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0, 5.0], help="guidance scales to try")
    p.add_argument("--rescale", type=float, nargs="+", default=[SamplingConfig.rescale], help="rescale φ values")
    p.add_argument("--intervals", type=interval, nargs="+", default=[None], help="guidance intervals LO:HI or all")
    p.add_argument("--real", help="course-layout MNIST-M folder: also report the Fréchet distance to its val split")
    p.add_argument("--log", help="append every row as a JSON line to this file")
    p.add_argument("--per-class", type=int, default=100, help="digits per class per setting")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="starting-noise seeds (0: hw2_1.sh's)")
    p.add_argument("--weak", help="a weaker P1 checkpoint (e.g. an earlier release's) for --autoguidance")
    p.add_argument("--autoguidance", type=float, nargs="+", default=[1.0], help="autoguidance weights a (1 = off)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    args = p.parse_args(argv)
    if args.weak is None and any(a != 1.0 for a in args.autoguidance):
        p.error("--autoguidance other than 1 needs --weak")

    device = pick_device(args.device)
    model, schedule = load_model(args.checkpoint, device)
    autoguided = any(a != 1.0 for a in args.autoguidance)
    weak = load_model(args.weak, device)[0] if autoguided else None  # no a other than 1: --weak is never run
    lenet = load_lenet(args.classifier)
    real = load_real(args.real, lenet) if args.real else None
    print(f"{10 * args.per_class} digits per setting, threads={torch.get_num_threads()}, device={device}\n")
    print(
        "| solver | steps | guidance | autoguidance | rescale | interval | seed | accuracy | worst digit "
        "| Fréchet (floor) | seconds |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for solver, steps, eta, scale, auto, phi, window, seed in itertools.product(
        args.solvers, args.steps, args.etas, args.guidance, args.autoguidance, args.rescale, args.intervals, args.seeds
    ):
        if scale == 1.0 and (phi != args.rescale[0] or window != args.intervals[0]):
            continue  # no guidance: rescale and interval change nothing
        if eta != 0.0 and solver != "ddim":
            continue  # η is DDIM's; DPM-Solver++(2M) is deterministic
        config = SamplingConfig(solver=solver, steps=steps, eta=eta, guidance=scale, rescale=phi, interval=window)
        started = time.time()
        net = model if auto == 1.0 else AutoGuided(model, weak, auto)
        # a stochastic sampler's noise comes from the row's seed too (so every row repeats), but not the same
        # stream as the starting noise: seeded alike, its first draw would be x_T itself
        noise = torch.Generator().manual_seed(ETA_NOISE_OFFSET + seed) if eta != 0.0 else None
        x, labels = draw_digits(net, schedule, args.per_class, seed, config, generator=noise)
        seconds = time.time() - started
        scores = score_digits(signed_to_uint8(x).permute(0, 3, 1, 2), labels, lenet, real)
        worst = min(scores.per_digit, key=scores.per_digit.get)
        row = {"checkpoint": Path(args.checkpoint).name, "solver": solver, "grid": "trailing", "steps": steps}
        if eta != 0.0:
            row |= {"eta": eta}
        if auto != 1.0:
            row |= {"autoguidance": auto, "weak": Path(args.weak).name}
        row |= {"guidance": scale, "rescale": phi, "interval": list(window) if window else None, "seed": seed}
        row |= {"digits": len(labels), "accuracy": scores.accuracy, "worst_digit": worst}
        row |= {"worst_accuracy": scores.per_digit[worst], "seconds": round(seconds, 1)}
        frechet = ""
        if scores.frechet is not None:
            row |= {"frechet": scores.frechet.overall.distance, "frechet_floor": scores.frechet.overall.floor}
            row |= {f"frechet_{k}": v for k, v in scores.references.items() if k != "floor"}
            frechet = f"{scores.frechet.overall.distance:.2f} ({scores.frechet.overall.floor:.2f})"
        shown = f"{window[0]}–{window[1]}" if window else "all"
        shown_solver = f"{solver} η={eta:g}" if eta != 0.0 else solver
        print(
            f"| {shown_solver} | {steps} | {scale:g} | {auto:g} | {phi:g} | {shown} | {seed} | {100 * scores.accuracy:.2f}% "
            f"| {worst}: {100 * scores.per_digit[worst]:.0f}% | {frechet} | {seconds:.1f} |",
            flush=True,
        )
        if args.log:
            with open(args.log, "a") as log:
                log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
