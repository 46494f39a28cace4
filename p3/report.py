"""P3 report outputs from one command: the accuracy table and the t-SNE plots.

    python -m p3.report --digits hw2_data/digits --runs runs/p3 --out figures/p3

Reads ``<runs>/<target>_<method>/best.pt`` (a ``p3.train`` output) or ``<runs>/<target>_<method>.pt``
(the shipped layout of ``p3/checkpoints``, the default) for target ∈ {svhn, usps} and every
method, re-scores each on the target's val split, and writes ``accuracy.md`` and
``accuracy.csv`` (rows: methods; columns: MNIST-M→SVHN, MNIST-M→USPS). Then, for each scenario,
t-SNE of the feature extractor's output (``--tsne-method``, DANN by default) on validation images
of both domains: ``tsne_<target>_class.png`` and ``tsne_<target>_domain.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hw2lib.cli import UserError, pick_device, run_main  # noqa: E402
from hw2lib.digits import load_split, to_signed  # noqa: E402

from .predict import CHECKPOINT_DIR, load_classifier  # noqa: E402
from .train import METHODS, accuracy  # noqa: E402

TARGETS = ("svhn", "usps")
ROW_NAMES = {
    "source-only": "Trained on source (MNIST-M)",
    "dann": "DANN",
    "dann-plus": "DANN+ (ours: see README)",
    "target-only": "Trained on target",
}


@torch.no_grad()
def features(model, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    device = next(model.parameters()).device
    return torch.cat([model(to_signed(c).to(device))[1].cpu() for c in images.split(batch_size)]).numpy()


def run_checkpoint(runs: Path, target: str, method: str) -> Path:
    """A run's best.pt, or the shipped ``<target>_<method>.pt``."""
    trained = runs / f"{target}_{method}" / "best.pt"
    return trained if trained.exists() else runs / f"{target}_{method}.pt"


def accuracy_table(digits: Path, runs: Path, device: torch.device) -> dict[str, dict[str, Optional[float]]]:
    """``{method: {target: val accuracy or None}}`` re-measured from each run's best.pt."""
    table: dict[str, dict[str, Optional[float]]] = {m: {} for m in METHODS}
    for target in TARGETS:
        ckpts = {m: run_checkpoint(runs, target, m) for m in METHODS}
        if not any(p.exists() for p in ckpts.values()):
            for m in METHODS:
                table[m][target] = None
            continue
        val_x, val_y = load_split(digits / target, "val")
        for method, path in ckpts.items():
            table[method][target] = accuracy(load_classifier(path, device), val_x, val_y) if path.exists() else None
    return table


def write_table(table: dict, out: Path) -> None:
    fmt = lambda v: "—" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    header = "| | MNIST-M → SVHN (stand-in) | MNIST-M → USPS |\n|---|---:|---:|\n"
    lines = [f"| {ROW_NAMES[m]} | {fmt(r.get('svhn'))} | {fmt(r.get('usps'))} |" for m, r in table.items()]
    (out / "accuracy.md").write_text(header + "\n".join(lines) + "\n")
    cell = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    csv = ["method,mnistm_to_svhn,mnistm_to_usps"] + [
        f"{m},{cell(r.get('svhn'))},{cell(r.get('usps'))}" for m, r in table.items()
    ]
    (out / "accuracy.csv").write_text("\n".join(csv) + "\n")


def tsne_plots(model, source_x, source_y, target_x, target_y, target: str, out: Path, seed: int) -> None:
    from sklearn.manifold import TSNE  # imported here: only the report needs it

    feats = np.concatenate([features(model, source_x), features(model, target_x)])
    emb = TSNE(n_components=2, init="pca", perplexity=30, random_state=seed).fit_transform(feats)
    classes = np.concatenate([source_y.numpy(), target_y.numpy()])
    domains = np.array([0] * len(source_x) + [1] * len(target_x))
    for kind, colours, names, cmap in (
        ("class", classes, [str(d) for d in range(10)], "tab10"),
        ("domain", domains, ["MNIST-M", target.upper()], "coolwarm"),
    ):
        fig, ax = plt.subplots(figsize=(5.5, 5))
        scatter = ax.scatter(emb[:, 0], emb[:, 1], c=colours, cmap=cmap, s=3, alpha=0.7)
        ax.legend(scatter.legend_elements()[0], names, loc="best", fontsize=7, markerscale=1.2)
        ax.set_title(f"t-SNE of features, MNIST-M → {target.upper()}, by {kind}")
        ax.set_xticks([]), ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(out / f"tsne_{target}_{kind}.png", dpi=150)
        plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p3.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--digits", required=True, help="folder holding mnistm/, svhn/ and usps/ (course layout)")
    p.add_argument(
        "--runs",
        default=str(CHECKPOINT_DIR),
        help="p3.train runs named <target>_<method>/ (default: the shipped checkpoints)",
    )
    p.add_argument("--out", required=True, help="folder for accuracy.md/.csv and the t-SNE PNGs")
    p.add_argument("--tsne-method", choices=METHODS, default="dann", help="whose feature extractor to plot")
    p.add_argument("--tsne-per-domain", type=int, default=1500, help="validation images per domain in each t-SNE")
    p.add_argument("--seed", type=int, default=0, help="seed of the t-SNE and of the image subsample")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    digits, runs, out = Path(args.digits), Path(args.runs), Path(args.out)
    if not runs.is_dir():
        raise UserError(f"{runs}: no such directory (expected p3.train runs named <target>_<method>)")
    device = pick_device(args.device)
    out.mkdir(parents=True, exist_ok=True)
    table = accuracy_table(digits, runs, device)
    write_table(table, out)
    print((out / "accuracy.md").read_text())
    source_x, source_y = load_split(digits / "mnistm", "val")
    pick = torch.randperm(len(source_x), generator=torch.Generator().manual_seed(args.seed))[: args.tsne_per_domain]
    for target in TARGETS:
        path = run_checkpoint(runs, target, args.tsne_method)
        if not path.exists():
            print(f"skipping t-SNE for {target}: {path} not found")
            continue
        target_x, target_y = load_split(digits / target, "val")
        t_pick = torch.randperm(len(target_x), generator=torch.Generator().manual_seed(args.seed))[
            : args.tsne_per_domain
        ]
        model = load_classifier(path, device)
        tsne_plots(model, source_x[pick], source_y[pick], target_x[t_pick], target_y[t_pick], target, out, args.seed)
        print(f"wrote tsne_{target}_class.png and tsne_{target}_domain.png")


if __name__ == "__main__":
    run_main(main)
