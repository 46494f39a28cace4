"""``hw2_3.sh``: label every target-domain image in a folder and write ``image_name,label`` CSV.

    python -m p3.predict TEST_DIR OUT_CSV [--checkpoint PATH]

The domain picks ``p3/checkpoints/<domain>_dann-plus.pt`` (``p3/table.py: tell_domain``). The path
decides when it names exactly one of ``svhn`` and ``usps`` (case-insensitive; the path as given, else
its absolute and resolved forms). Otherwise (neither, as in a grader's ``/tmp/grading/images``, or
both) the images do: all grayscale (the three channels equal at every pixel) is usps, all colour is
svhn, and a mix is an error with nothing written. One stderr line says which domain and why, e.g.
``p3: svhn (the path names neither svhn nor usps; all 26 images are colour)``.

Every .png/.jpg/.jpeg in TEST_DIR, in name order, gets one row; grayscale, 16-bit, RGBA, palette and
odd-sized images are converted to 28×28 RGB first. The network normalises with the target
BatchNorm statistics its checkpoint stores.
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

from .table import shipped_checkpoint, tell_domain


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
    p.add_argument("test_dir", help="folder of svhn or usps images (told by its path, else by the images)")
    p.add_argument("out_csv", help="CSV to write (image_name,label)")
    p.add_argument("--checkpoint", help="classifier checkpoint (default: p3/checkpoints/<domain>_dann-plus.pt)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, …")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    require_path(args.test_dir, "the test folder")
    exact_float32()
    out_csv = check_writable_file(args.out_csv, "the output CSV")
    with replacing(out_csv) as tmp:  # this run's lock on OUT_CSV, taken before any work (hw2lib/locks.py)
        files = list_images(args.test_dir)
        names, images = [f.name for f in files], read_images(files)
        domain, why = tell_domain(args.test_dir, images, names)  # a mixed folder stops here: nothing written
        device = pick_device(args.device)
        model = load_digit_classifier(args.checkpoint or shipped_checkpoint(domain), device)
        labels = predict_labels(model, images).tolist()
        write_text(tmp, csv_text(names, labels))
    print(f"{domain}: wrote {len(files)} predictions to {args.out_csv}")
    print(f"p3: {domain} ({why})", file=sys.stderr)  # after success only: a failure's stderr is its one error line
    print(f"device: {device}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
