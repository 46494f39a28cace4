"""P1 report figures from one command: the 10×10 digit grid and the reverse process of the first "0".

    python -m p1.figures --out figures/p1

* ``digit_grid.png``: rows are digits 0–9, columns ten different starting noises: the first ten
  digits of each class that ``hw2_1.sh`` writes (same seed and settings);
* ``reverse_process.png``: the first "0" of ``hw2_1.sh`` (same seed and settings) at six evenly
  spaced points from pure noise (t = 1000) to the final image (t = 0): the state x_t (top) and
  the model's current prediction of x_0 (bottom).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from hw2lib.cli import exact_float32, pick_device, run_main  # noqa: E402
from hw2lib.images import save_grid, signed_to_uint8  # noqa: E402

from .generate import add_sampling_args, load_selector, sampling_config  # noqa: E402
from .sampling import draw_digits, generate, initial_noise, load_model  # noqa: E402


def reverse_process(
    model, schedule, config, first: torch.Tensor, points: int = 6
) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """``[(t, x_t, x0_pred)]`` of a "0" drawn from noise ``first`` (1, 3, 28, 28) at ``points`` evenly
    spaced t from T to 0 (the nearest step the sampler visits).

    ``x_t`` is the sampler's state; ``x0_pred`` its current guess of the clean image (DDIM eq. 9),
    which shows the digit forming long before the noise in ``x_t`` fades.
    """
    T = schedule.num_timesteps
    wanted = [round(T - k * T / (points - 1)) for k in range(points)]  # 1000, 800, …, 0
    states = {T: (first.clone(), torch.zeros_like(first))}

    def keep(t: int, s: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        states[max(s, 0)] = (x[:1].cpu().clone(), x0[:1].cpu().clone())

    generate(model, schedule, torch.zeros(1, dtype=torch.long), first, config, callback=keep)
    visited = sorted(states)
    return [(w, *states[min(visited, key=lambda v: abs(v - w))]) for w in wanted]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p1.figures", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="folder for digit_grid.png and reverse_process.png")
    add_sampling_args(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    exact_float32()
    device = pick_device(args.device)
    model, schedule = load_model(args.checkpoint, device)
    config = sampling_config(args)
    # exactly what hw2_1.sh draws: the grid shows 0_001…0_010, 1_001…1_010, …
    digits, _, rows = draw_digits(model, schedule, 100, args.seed, config, load_selector(args, device), progress=True)
    save_grid(
        signed_to_uint8(digits.view(10, 100, *digits.shape[1:])[:, :10].flatten(0, 1)), out / "digit_grid.png", 10
    )

    first_zero = int(rows[0])  # the noise row behind 0_001.png
    frames = reverse_process(model, schedule, config, initial_noise(first_zero + 1, args.seed)[first_zero:])
    fig, axes = plt.subplots(2, len(frames), figsize=(1.6 * len(frames), 3.6))
    for col, (t, x_t, x0_pred) in enumerate(frames):
        for row, (image, name) in enumerate(((x_t, "$x_t$"), (x0_pred, "predicted $x_0$"))):
            ax = axes[row][col]
            ax.imshow(signed_to_uint8(image.clamp(-1, 1))[0].numpy(), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(f"t = {t}")
            if col == 0:
                ax.set_ylabel(name)
    fig.tight_layout()
    fig.savefig(out / "reverse_process.png", dpi=150)
    plt.close(fig)
    print(f"wrote {out / 'digit_grid.png'} and {out / 'reverse_process.png'}")


if __name__ == "__main__":
    run_main(main)
