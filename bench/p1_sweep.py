"""Choose P1's solver, grid, steps and guidance scale by measurement; time the samplers.

    python bench/p1_sweep.py --classifier ../shared/evaluator/Classifier.pth \
        --solvers dpm++2m ddim --steps 10 20 --guidance 3 5 --per-class 100

For every (solver, grid, steps, guidance, oversample) it draws ``--per-class`` digits per class with the shipped
checkpoint (seed 0, as hw2_1.sh) and prints the grader-LeNet accuracy, the worst digit and the
wall time, as a Markdown table. ``--ddpm-steps N`` also times N steps of the ancestral DDPM-style
sampler (DDIM with η = 1 over a 400-step grid) on 1000 digits and reports 400 × the per-step time.
"""

from __future__ import annotations

import argparse
import itertools
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
    p.add_argument("--per-class", type=int, default=50, help="digits per class per setting")
    p.add_argument("--ddpm-steps", type=int, default=0, help="time this many steps of a 400-step ancestral sampler")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    args = p.parse_args()

    device = pick_device(args.device)
    model, schedule = load_model(args.checkpoint, device)
    classifier = load_lenet(args.classifier)
    selector = load_digit_classifier(args.selector, device) if max(args.oversample) > 1 else None
    print(f"{10 * args.per_class} digits per setting, threads={torch.get_num_threads()}, device={device}\n")
    print("| solver | grid | steps | guidance | oversample | accuracy | worst digit | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for solver, grid, steps, scale, oversample in itertools.product(
        args.solvers, args.grids, args.steps, args.guidance, args.oversample
    ):
        config = SamplingConfig(
            solver=solver, steps=steps, guidance=scale, trailing=grid == "trailing", oversample=oversample
        )
        started = time.time()
        x, labels, _ = draw_digits(model, schedule, args.per_class, 0, config, selector if oversample > 1 else None)
        seconds = time.time() - started
        preds = predict(classifier, signed_to_uint8(x).permute(0, 3, 1, 2))
        per_digit = per_digit_accuracy(preds, labels)
        worst = min(per_digit, key=per_digit.get)
        acc = (preds == labels).float().mean().item()
        print(
            f"| {solver} | {grid} | {steps} | {scale:g} | {oversample:g} | {100 * acc:.2f}% "
            f"| {worst}: {100 * per_digit[worst]:.0f}% | {seconds:.1f} |",
            flush=True,
        )
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
