"""P1 report figures from one command: the architecture, the 10×10 digit grid and the reverse process.

    python -m p1.figures --out figures/p1

* ``architecture.png``: the conditional UNet as a block diagram, with the tensor shape and the
  parameter count of every stage (measured by running one digit through the model);
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
import matplotlib.pyplot as plt
import torch

from hw2lib.cli import exact_float32, pick_device, run_main
from hw2lib.images import save_grid, signed_to_uint8

from .model import ResAttnBlock
from .sampling import add_sampling_args, draw_digits, generate, initial_noise, load_model, sampling_config


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


def stage_shapes(model) -> list[tuple[str, str, tuple[int, ...], int]]:
    """``[(kind, label, output shape without batch, parameters)]`` for every stage, found by running
    one digit through the model with forward hooks (so the drawing can never disagree with the code)."""
    stages, hooks = [], []
    named = [("stem", model.stem), *((f"down{i}", m) for i, m in enumerate(model.down))]
    named += [*((f"mid{i}", m) for i, m in enumerate(model.mid)), *((f"up{i}", m) for i, m in enumerate(model.up))]
    named.append(("out", model.out))
    for name, module in named:
        kind = name.rstrip("0123456789")
        label = describe(module)
        params = sum(p.numel() for p in module.parameters())
        hooks.append(
            module.register_forward_hook(
                lambda m, i, o, k=kind, lb=label, n=params: stages.append((k, lb, tuple(o.shape[1:]), n))
            )
        )
    device = next(model.parameters()).device  # all three inputs on the model's device (a GPU, or meta in tests)
    with torch.no_grad():
        model(
            torch.zeros(1, 3, 28, 28, device=device),
            torch.zeros(1, dtype=torch.long, device=device),
            torch.zeros(1, dtype=torch.long, device=device),
        )
    for hook in hooks:
        hook.remove()
    return stages


def describe(module) -> str:
    if isinstance(module, ResAttnBlock):
        return "ResBlock + self-attention" if not isinstance(module.attn, torch.nn.Identity) else "ResBlock"
    if isinstance(module, torch.nn.Conv2d):
        return "conv 3×3, stride 2"
    if isinstance(module, torch.nn.Upsample):
        return "nearest ×2"
    names = [m.__class__.__name__ for m in module]
    return {
        "PixelUnshuffle": "PixelUnshuffle(2) + conv 3×3",
        "GroupNorm": "GroupNorm, SiLU, conv 3×3, PixelShuffle(2)",
    }.get(names[0], "/".join(names))


def architecture_figure(model, path: Path) -> None:
    """A block diagram of the conditional UNet: encoder down the left, middle at the bottom, decoder
    up the right, with tensor shapes (C × H × W) and parameters per stage, the skip connections
    (dashed) and the conditioning path."""
    stages = stage_shapes(model)
    down = [s for s in stages if s[0] in ("stem", "down")]
    mid = [s for s in stages if s[0] == "mid"]
    up = [s for s in stages if s[0] in ("up", "out")]
    n_rows = len(down) + len(mid)
    place = {}  # stage index → (x, y)
    for i in range(len(down)):
        place[("down", i)] = (0.2, n_rows - i)
    for i in range(len(mid)):
        place[("mid", i)] = (0.5, n_rows - len(down) - i)
    for i in range(len(up)):
        place[("up", i)] = (0.8, n_rows - len(down) - len(mid) + 1 + i)
    fig, ax = plt.subplots(figsize=(11, 0.75 * (n_rows + 4)))
    ax.set_axis_off()
    box = dict(boxstyle="round,pad=0.35", linewidth=0.8)
    colours = {"stem": "#d8e8f8", "down": "#d8e8f8", "mid": "#f8e8c8", "up": "#d8f0d8", "out": "#eeeeee"}
    for group, items in (("down", down), ("mid", mid), ("up", up)):
        for i, (kind, label, shape, params) in enumerate(items):
            x, y = place[(group, i)]
            text = f"{label}\n{' × '.join(map(str, shape))}   ({params / 1e3:.0f} k params)"
            ax.text(x, y, text, ha="center", va="center", fontsize=8, bbox={**box, "fc": colours[kind]}, zorder=3)
    arrow = dict(arrowstyle="->", lw=0.9, color="black")
    path_order = [("down", i) for i in range(len(down))] + [("mid", i) for i in range(len(mid))]
    path_order += [("up", i) for i in range(len(up))]
    for a_key, b_key in zip(path_order, path_order[1:]):
        (xa, ya), (xb, yb) = place[a_key], place[b_key]
        if xa == xb:  # along a column: from one box's edge to the next's
            start, end = (xa, ya + (-0.28 if yb < ya else 0.28)), (xb, yb + (0.28 if yb < ya else -0.28))
        else:  # between columns: side to side
            start, end = (xa + 0.11, ya), (xb - 0.11, yb)
        ax.annotate("", xy=end, xytext=start, arrowprops=arrow, zorder=2)
    skips = list(range(len(down)))  # every encoder output is kept; decoder ResBlocks take the latest
    for i, (kind, label, _, _) in enumerate(up):
        if label.startswith("ResBlock"):
            (xa, ya), (xb, yb) = place[("down", skips.pop())], place[("up", i)]
            ax.annotate(
                "",
                xy=(xb - 0.12, yb),
                xytext=(xa + 0.12, ya),
                zorder=1,
                arrowprops=dict(arrowstyle="->", lw=0.7, ls="--", color="#6688aa", connectionstyle="arc3,rad=-0.08"),
            )
    ax.text(0.2, n_rows + 0.75, "x_t  3 × 28 × 28, in [−1, 1]", ha="center", fontsize=9)
    ax.text(0.8, n_rows - len(down) - len(mid) + len(up) + 0.75, "ε prediction  3 × 28 × 28", ha="center", fontsize=9)
    ax.text(
        0.5,
        n_rows - len(down) - len(mid) - 0.45,
        'conditioning: sinusoidal(t) → MLP, plus an embedding of the class (10 digits + 1 "no class" token\n'
        "for classifier-free guidance); it sets a FiLM scale and shift in every ResBlock.  "
        "Dashed: skip connections, concatenated [x, skip].",
        ha="center",
        va="top",
        fontsize=8,
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(n_rows - len(down) - len(mid) - 1.2, n_rows + 1.3)
    total = sum(p.numel() for p in model.parameters())
    ax.set_title(f"P1 conditional UNet on 2×2 patches: {total:,} parameters (shapes per image: C × H × W)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p1.figures", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="folder for architecture.png, digit_grid.png and reverse_process.png")
    add_sampling_args(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    exact_float32()
    device = pick_device(args.device)
    model, schedule = load_model(args.checkpoint, device)
    out.mkdir(parents=True, exist_ok=True)
    architecture_figure(model, out / "architecture.png")
    config = sampling_config(args)
    # exactly what hw2_1.sh draws: the grid shows 0_001…0_010, 1_001…1_010, …
    digits, _ = draw_digits(model, schedule, 100, args.seed, config, progress=True)
    save_grid(
        signed_to_uint8(digits.view(10, 100, *digits.shape[1:])[:, :10].flatten(0, 1)), out / "digit_grid.png", 10
    )

    frames = reverse_process(model, schedule, config, initial_noise(1, args.seed))  # the noise behind 0_001.png
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
    print(f"wrote architecture.png, digit_grid.png and reverse_process.png to {out}")


if __name__ == "__main__":
    run_main(main)
