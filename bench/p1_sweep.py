"""Choose P1's solver, grid, steps and guidance by measurement; time the samplers.

    python bench/p1_sweep.py --classifier ../shared/evaluator/Classifier.pth --real hw2_data/digits/mnistm \
        --solvers dpm++2m ddim --steps 10 20 --guidance 3 5 --per-class 100 --log runs/p1_front.jsonl

For every (solver, grid, steps, guidance, oversample) it draws ``--per-class`` digits per class with the shipped
checkpoint (seed 0, as hw2_1.sh) and prints the grader-LeNet accuracy, the worst digit, the
Fréchet distance to MNIST-M val with its floor (``--real``; p1/frechet.py) and the wall time, as a
Markdown table; ``--log`` appends every row as JSON (``bench/p1_front.py`` draws the front from it).
``--autoguidance A --weak CKPT`` adds autoguidance by that weaker model (p1.sampling.AutoGuidance).
``--ddpm-steps N`` also times N steps of the ancestral DDPM-style
sampler (DDIM with η = 1 over a 400-step grid) on 1000 digits and reports 400 × the per-step time.
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
from hw2lib.ddim import DDIMSampler
from hw2lib.digit_cnn import load_digit_classifier
from hw2lib.images import signed_to_uint8
from p1.classifier import load_lenet, per_digit_accuracy, predict
from p1.evaluate import real_reference
from p1.frechet import digit_features
from p1.sampling import (
    DEFAULT_CHECKPOINT,
    DEFAULT_SELECTOR,
    SOLVERS,
    ClassifierFreeGuidance,
    SamplingConfig,
    draw_digits,
    initial_noise,
    load_model,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="P1 checkpoint")
    p.add_argument("--classifier", required=True, help="the grader's LeNet (Classifier.pth)")
    p.add_argument("--solvers", nargs="+", choices=SOLVERS, default=["dpm++2m", "ddim"], help="samplers to try")
    p.add_argument("--grids", nargs="+", choices=("trailing", "leading"), default=["trailing"], help="timestep grids")
    p.add_argument("--steps", type=int, nargs="+", default=[10, 20], help="step counts to try")
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0], help="guidance scales to try")
    p.add_argument("--oversample", type=float, nargs="+", default=[1.0], help="candidates per kept digit to try")
    p.add_argument("--selector", default=str(DEFAULT_SELECTOR), help="candidate selector (for oversample > 1)")
    p.add_argument("--weak", help="the weaker P1 checkpoint that --autoguidance > 1 uses")
    p.add_argument("--autoguidance", type=float, nargs="+", default=[1.0], help="autoguidance scales to try")
    p.add_argument(
        "--rescale", type=float, nargs="+", default=[SamplingConfig.rescale], help="guidance rescale φ values to try"
    )
    p.add_argument("--real", help="course-layout MNIST-M folder: also report the Fréchet distance to its val split")
    p.add_argument("--log", help="append every row as a JSON line to this file")
    p.add_argument("--per-class", type=int, default=50, help="digits per class per setting")
    p.add_argument("--ddpm-steps", type=int, default=0, help="time this many steps of a 400-step ancestral sampler")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    args = p.parse_args()

    device = pick_device(args.device)
    model, schedule = load_model(args.checkpoint, device)
    classifier = load_lenet(args.classifier)
    selector = load_digit_classifier(args.selector, device) if max(args.oversample) > 1 else None
    weak = load_model(args.weak, device)[0] if args.weak else None
    reference, extractor = real_reference(args.real, args.selector) if args.real else (None, None)
    guide = f"weak model for autoguidance: {Path(args.weak).name}" if weak is not None else "no weak model"
    print(f"{10 * args.per_class} digits per setting, {guide}, threads={torch.get_num_threads()}, device={device}\n")
    print(
        "| solver | grid | steps | guidance | autoguidance | rescale | oversample | accuracy | worst digit "
        "| Fréchet (floor) | seconds |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for solver, grid, steps, scale, auto, phi, oversample in itertools.product(
        args.solvers, args.grids, args.steps, args.guidance, args.autoguidance, args.rescale, args.oversample
    ):
        config = SamplingConfig(solver=solver, steps=steps, guidance=scale, autoguidance=auto, rescale=phi)
        config.trailing, config.oversample = grid == "trailing", oversample
        started = time.time()
        chosen = selector if oversample > 1 else None
        x, labels, _ = draw_digits(model, schedule, args.per_class, 0, config, chosen, weak=weak)
        seconds = time.time() - started
        images = signed_to_uint8(x).permute(0, 3, 1, 2)
        preds = predict(classifier, images)
        per_digit = per_digit_accuracy(preds, labels)
        worst = min(per_digit, key=per_digit.get)
        acc = (preds == labels).float().mean().item()
        row = {"solver": solver, "grid": grid, "steps": steps, "guidance": scale, "oversample": oversample}
        row |= {
            "autoguidance": auto,
            "rescale": phi,
            "weak": args.weak if auto != 1 else None,
            "digits": len(labels),
            "accuracy": acc,
            "worst_digit": worst,
        }
        row |= {"worst_accuracy": per_digit[worst], "seconds": round(seconds, 1)}
        frechet = ""
        if reference is not None:
            report = reference.score(digit_features(extractor, images), labels)
            row |= {"frechet": report.overall.distance, "frechet_floor": report.overall.floor}
            frechet = f"{report.overall.distance:.2f} ({report.overall.floor:.2f})"
        print(
            f"| {solver} | {grid} | {steps} | {scale:g} | {auto:g} | {phi:g} | {oversample:g} | {100 * acc:.2f}% "
            f"| {worst}: {100 * per_digit[worst]:.0f}% | {frechet} | {seconds:.1f} |",
            flush=True,
        )
        if args.log:
            with open(args.log, "a") as log:
                log.write(json.dumps(row) + "\n")
    if args.ddpm_steps:
        sampler = DDIMSampler(schedule, num_inference_steps=400, steps_offset=0, eta=1.0)
        all_labels = torch.arange(10).repeat_interleave(100)
        x = initial_noise(1000, 0).to(device)
        gen = torch.Generator().manual_seed(0)
        eps_fn = ClassifierFreeGuidance(model, all_labels.to(device), SamplingConfig.guidance)
        started = time.time()
        with torch.no_grad():
            for t, s in list(zip(sampler.timesteps(), sampler.prev_timesteps()))[: args.ddpm_steps]:
                eps = eps_fn(x, torch.full((1000,), t, device=x.device))
                x, _ = sampler.step(eps, x, t, s, generator=gen)
        per_step = (time.time() - started) / args.ddpm_steps
        print(
            f"\n400-step ancestral sampler, 1000 digits: {per_step:.2f} s/step measured over {args.ddpm_steps} steps "
            f"→ {400 * per_step:.0f} s for all 400 steps"
        )


if __name__ == "__main__":
    main()
