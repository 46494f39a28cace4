"""P3 report outputs from one command: the accuracy table and the t-SNE plots.

    python -m p3.report --digits hw2_data/digits --runs runs/p3 --out figures/p3

Reads ``<runs>/<target>_<method>/best.pt`` (a ``p3.train`` output) or ``<runs>/<target>_<method>.pt``
(the shipped layout of ``p3/checkpoints``, the default) for target ∈ {svhn, usps} and every
method, re-scores each on the target's val split (SVHN: ``svhn/``), and writes ``accuracy.md``
and ``accuracy.csv`` (rows: methods; columns: MNIST-M→SVHN, MNIST-M→USPS); with
``--train-split-check`` the same on the target's train split as a second check. Each row is scored with
the BatchNorm statistics its checkpoint stores (as ``hw2_3.sh`` does); one more row scores the
shipped method with statistics re-estimated on the val folder itself (AdaBN at test time, which
``hw2_3.sh`` does not do). Then, for each
scenario and each ``--tsne-methods`` entry, t-SNE of the feature extractor's output on validation
images of both domains: ``tsne_<target>_<method>_class.png`` and ``…_domain.png``, and ``tsne.md``,
the table that shows them beside how mixed the domains are in each map (:func:`domain_mixing`).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from hw2lib.cli import UserError, pick_device, run_main
from hw2lib.digit_cnn import accuracy, adapt_batchnorm, load_digit_classifier, penultimate_features
from hw2lib.digits import load_split

from .table import CHECKPOINT_DIR, DATA_FOLDERS, DOMAINS, METHODS, SHIPPED_METHOD

TEST_TIME_BN = f"{SHIPPED_METHOD}+test-time-bn"  # the extra row: statistics re-estimated on the val folder
ROW_NAMES = {
    "source-only": "Trained on source (MNIST-M)",
    "dann": "DANN",
    "dann-plus": "DANN+ (ours, shipped)",
    TEST_TIME_BN: "DANN+ with BN statistics of the val folder itself (test-time AdaBN; hw2_3.sh does not)",
    "target-only": "Trained on target",
}


def checkpoint_for(runs: Path, target: str, method: str) -> Path:
    """A run's best.pt, or the shipped ``<target>_<method>.pt``."""
    trained = runs / f"{target}_{method}" / "best.pt"
    return trained if trained.exists() else runs / f"{target}_{method}.pt"


def accuracy_table(
    digits: Path, runs: Path, device: torch.device, split: str = "val"
) -> dict[str, dict[str, Optional[float]]]:
    """``{row: {target: val accuracy or None}}`` re-measured from each run's best.pt."""
    rows = [*METHODS[:3], TEST_TIME_BN, METHODS[3]]
    table: dict[str, dict[str, Optional[float]]] = {r: {t: None for t in DOMAINS} for r in rows}
    for target in DOMAINS:
        ckpts = {m: checkpoint_for(runs, target, m) for m in METHODS}
        if not any(p.exists() for p in ckpts.values()):
            continue
        val_x, val_y = load_split(digits / DATA_FOLDERS[target], split)
        for method, path in ckpts.items():
            if path.exists():
                model = load_digit_classifier(path, device)
                table[method][target] = accuracy(model, val_x, val_y)
                if method == SHIPPED_METHOD:
                    table[TEST_TIME_BN][target] = accuracy(adapt_batchnorm(model, val_x), val_x, val_y)
    return table


def write_table(table: dict, out: Path, stem: str = "accuracy") -> None:
    fmt = lambda v: "—" if v is None else f"{100 * v:.2f}%"
    header = "| | MNIST-M → SVHN | MNIST-M → USPS |\n|---|---:|---:|\n"
    lines = [f"| {ROW_NAMES[m]} | {fmt(r.get('svhn'))} | {fmt(r.get('usps'))} |" for m, r in table.items()]
    (out / f"{stem}.md").write_text(header + "\n".join(lines) + "\n")
    cell = lambda v: "" if v is None else f"{v:.4f}"
    csv = ["method,mnistm_to_svhn,mnistm_to_usps"] + [
        f"{m},{cell(r.get('svhn'))},{cell(r.get('usps'))}" for m, r in table.items()
    ]
    (out / f"{stem}.csv").write_text("\n".join(csv) + "\n")


MIXING_K = 10  # neighbours per point in the domain-mixing measure


def domain_mixing(emb: np.ndarray, domains: np.ndarray, k: int = MIXING_K) -> tuple[float, float]:
    """(k-NN domain agreement, its chance level) of a 2-D map: the mean fraction of each point's ``k``
    nearest neighbours (itself left out) that come from its own domain, and what domain labels shuffled
    in the same proportions would give, Σ_d n_d (n_d − 1) / (N (N − 1)). At chance the domains are
    mixed; at 1 every neighbourhood holds one domain only (e.g. each class drawn as two clusters)."""
    from sklearn.neighbors import NearestNeighbors

    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(emb).kneighbors(emb)
    same = domains[idx[:, 1:]] == domains[:, None]  # column 0 is the point itself
    n, counts = len(domains), np.bincount(domains)
    return float(same.mean()), float((counts * (counts - 1)).sum() / (n * (n - 1)))


def class_agreement(emb: np.ndarray, classes: np.ndarray, k: int = MIXING_K) -> float:
    """The mean fraction of each point's ``k`` nearest neighbours (itself left out) of its own class:
    near 1 the classes are separate clusters in the map, near 1/10 they overlap completely."""
    from sklearn.neighbors import NearestNeighbors

    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(emb).kneighbors(emb)
    return float((classes[idx[:, 1:]] == classes[:, None]).mean())


def tsne_plots(
    model, source_x, source_y, target_x, target_y, target: str, method: str, out: Path, seed: int
) -> tuple[float, float, float]:
    """Write the by-class and by-domain maps; returns :func:`domain_mixing` of the map and the
    :func:`class_agreement` of its target points among themselves."""
    from sklearn.manifold import TSNE  # imported here: only the report needs it

    feats = np.concatenate([penultimate_features(model, x)[1].numpy() for x in (source_x, target_x)])
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
        ax.set_title(
            f"t-SNE of {ROW_NAMES[method].split(' (')[0]} features, MNIST-M → {target.upper()}, by {kind}", fontsize=9
        )
        ax.set_xticks([]), ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(out / f"tsne_{target}_{method}_{kind}.png", dpi=150)
        plt.close(fig)
    is_target = domains == 1
    return (*domain_mixing(emb, domains), class_agreement(emb[is_target], classes[is_target]))


def write_tsne_table(mixing: dict[tuple[str, str], tuple[float, float, float]], out: Path) -> None:
    """``tsne.md``: each map by class and by domain, with how mixed its domains are and how separate
    its target classes are beside it."""
    lines = [
        f"| | by class | by domain | k-NN domain agreement (k = {MIXING_K}) | its chance level "
        "| target points: k-NN class agreement |",
        "|---|---|---|---:|---:|---:|",
    ]
    for (target, method), (agree, chance, classes) in mixing.items():
        name = f"{ROW_NAMES[method].split(' (')[0]}, MNIST-M → {target.upper()}"
        maps = [f"![](figures/p3/tsne_{target}_{method}_{kind}.png)" for kind in ("class", "domain")]
        lines.append(f"| {name} | {maps[0]} | {maps[1]} | {agree:.2f} | {chance:.2f} | {classes:.2f} |")
    (out / "tsne.md").write_text("\n".join(lines) + "\n")


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
    p.add_argument(
        "--train-split-check",
        action="store_true",
        help="also score every row on the target's train split (accuracy_train_split.md/.csv): images the "
        "adaptation saw unlabelled, labels it never used, and no checkpoint was selected on",
    )
    p.add_argument(
        "--tsne-methods", nargs="*", choices=METHODS, default=["dann", SHIPPED_METHOD], help="whose features to plot"
    )
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
    write_table(accuracy_table(digits, runs, device), out)
    print((out / "accuracy.md").read_text())
    if args.train_split_check:
        write_table(accuracy_table(digits, runs, device, split="train"), out, stem="accuracy_train_split")
        print("second check, target train split (its labels unused by every row but target-only):")
        print((out / "accuracy_train_split.md").read_text())
    source_x, source_y = load_split(digits / "mnistm", "val")
    pick = torch.randperm(len(source_x), generator=torch.Generator().manual_seed(args.seed))[: args.tsne_per_domain]
    mixing = {}
    for target, method in itertools.product(DOMAINS, args.tsne_methods):
        path = checkpoint_for(runs, target, method)
        if not path.exists():
            print(f"skipping t-SNE for {target} {method}: {path} not found")
            continue
        target_x, target_y = load_split(digits / DATA_FOLDERS[target], "val")
        t_pick = torch.randperm(len(target_x), generator=torch.Generator().manual_seed(args.seed))
        t_pick = t_pick[: args.tsne_per_domain]
        model = load_digit_classifier(path, device)
        mixing[target, method] = tsne_plots(
            model, source_x[pick], source_y[pick], target_x[t_pick], target_y[t_pick], target, method, out, args.seed
        )
        agree, chance, classes = mixing[target, method]
        print(
            f"wrote tsne_{target}_{method}_class.png and _domain.png (domain agreement {agree:.2f}, chance "
            f"{chance:.2f}; target class agreement {classes:.2f})"
        )
    write_tsne_table(mixing, out)


if __name__ == "__main__":
    run_main(main)
