"""``hw2_3.sh``: label every target-domain image in a folder and write ``image_name,label`` CSV.

    python -m p3.predict TEST_DIR OUT_CSV [--checkpoint PATH]

The domain comes from the path: it must contain ``svhn`` or ``usps`` (case-insensitive), not both
(the path as given, else its absolute and resolved forms), and picks
``p3/checkpoints/<domain>_dann-plus.pt``. Every .png/.jpg/.jpeg in TEST_DIR, in name order, gets
one row; grayscale, 16-bit, RGBA, palette and odd-sized images are converted to 28×28 RGB first.
The network normalises with the target BatchNorm statistics its checkpoint stores.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import Optional, Sequence

from hw2lib.cli import exact_float32, pick_device, run_main
from hw2lib.digit_cnn import load_digit_classifier, predict_labels
from hw2lib.digits import read_images
from hw2lib.files import check_writable_file, replacing, require_path, write_text
from hw2lib.images import list_images

from .table import domain_of, shipped_checkpoint


def csv_text(names: Sequence[str], labels: Sequence[int]) -> str:
    """``image_name,label`` then one row per image, quoted by the ``csv`` module where a name needs it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image_name", "label"])
    writer.writerows(zip(names, labels))
    return buffer.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m p3.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("test_dir", help="folder of target-domain images; its path names svhn or usps")
    p.add_argument("out_csv", help="CSV to write (image_name,label)")
    p.add_argument("--checkpoint", help="classifier checkpoint (default: p3/checkpoints/<domain>_dann-plus.pt)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    require_path(args.test_dir, "the test folder")
    domain = domain_of(args.test_dir)
    exact_float32()
    out_csv = check_writable_file(args.out_csv, "the output CSV")
    with replacing(out_csv) as tmp:  # this run's lock on OUT_CSV, taken before any work (hw2lib/locks.py)
        files = list_images(args.test_dir)
        device = pick_device(args.device)
        model = load_digit_classifier(args.checkpoint or shipped_checkpoint(domain), device)
        labels = predict_labels(model, read_images(files)).tolist()
        write_text(tmp, csv_text([f.name for f in files], labels))
    print(f"{domain}: wrote {len(files)} predictions to {args.out_csv}")
    print(f"device: {device}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
