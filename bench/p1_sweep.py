"""Choose P1's DDIM steps and guidance scale by measurement; time the samplers.

    python bench/p1_sweep.py --classifier ../shared/evaluator/Classifier.pth \
        --steps 10 20 30 --guidance 1 2 3 4 --per-class 50

For every (steps, guidance, oversample) it draws ``--per-class`` digits per class with the shipped
checkpoint (seed 0, as hw2_1.sh) and prints the grader-LeNet accuracy, the worst digit and the
wall time, as a Markdown table. ``--ddpm-steps N`` also times N steps of the ancestral DDPM-style
sampler (DDIM with η = 1 over a 400-step grid) on 1000 digits and reports 400 × the per-step time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw2lib.ddim import DDIMSampler  # noqa: E402
from hw2lib.images import signed_to_uint8  # noqa: E402
from p1.classifier import load_classifier, per_digit_accuracy, predict  # noqa: E402
from p1.generate import DEFAULT_CHECKPOINT, DEFAULT_SELECTOR  # noqa: E402
from p1.sampling import ClassifierFreeGuidance, SamplingConfig, draw_digits, initial_noise, load_model  # noqa: E402
from p3.predict import load_classifier as load_selector  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="P1 checkpoint")
    p.add_argument("--classifier", required=True, help="the grader's LeNet (Classifier.pth)")
    p.add_argument("--steps", type=int, nargs="+", default=[10, 20, 30], help="DDIM step counts to try")
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0], help="guidance scales to try")
    p.add_argument("--oversample", type=float, nargs="+", default=[1.0], help="candidates per kept digit to try")
    p.add_argument("--selector", default=str(DEFAULT_SELECTOR), help="candidate selector (for oversample > 1)")
    p.add_argument("--per-class", type=int, default=50, help="digits per class per setting")
    p.add_argument("--ddpm-steps", type=int, default=0, help="time this many steps of a 400-step ancestral sampler")
    p.add_argument("--device", default="cpu", help="device to sample on")
    args = p.parse_args()

    model, schedule = load_model(args.checkpoint, torch.device(args.device))
    classifier = load_classifier(args.classifier)
    selector = load_selector(args.selector, torch.device(args.device)) if max(args.oversample) > 1 else None
    print(f"{10 * args.per_class} digits per setting, threads={torch.get_num_threads()}, device={args.device}\n")
    print("| DDIM steps | guidance | oversample | accuracy | worst digit | seconds |\n|---:|---:|---:|---:|---:|---:|")
    for steps in args.steps:
        for scale in args.guidance:
            for oversample in args.oversample:
                config = SamplingConfig(steps=steps, guidance=scale, oversample=oversample)
                started = time.time()
                x, labels, _ = draw_digits(
                    model, schedule, args.per_class, 0, config, selector if oversample > 1 else None
                )
                seconds = time.time() - started
                preds = predict(classifier, signed_to_uint8(x).permute(0, 3, 1, 2))
                per_digit = per_digit_accuracy(preds, labels)
                worst = min(per_digit, key=per_digit.get)
                acc = (preds == labels).float().mean().item()
                print(
                    f"| {steps} | {scale:g} | {oversample:g} | {100 * acc:.2f}% | {worst}: {100 * per_digit[worst]:.0f}% "
                    f"| {seconds:.1f} |",
                    flush=True,
                )
    if args.ddpm_steps:
        sampler = DDIMSampler(schedule, num_inference_steps=400, steps_offset=0, eta=1.0)
        all_labels = torch.arange(10).repeat_interleave(100)
        x = initial_noise(1000, 0).to(args.device)
        gen = torch.Generator().manual_seed(0)
        eps_fn = ClassifierFreeGuidance(model, all_labels.to(args.device), SamplingConfig.guidance)
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
