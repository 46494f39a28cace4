"""The report's table: its rows (training methods), its columns (target domains), and the
checkpoint that fills each cell. A domain is told by the path of the folder being labelled."""

from __future__ import annotations

import os
from pathlib import Path

from hw2lib.cli import UserError

METHODS = ("source-only", "dann", "dann-plus", "target-only")  # rows, in the table's order
DOMAINS = ("svhn", "usps")  # columns
DATA_FOLDERS = {"svhn": "svhn_real", "usps": "usps"}  # each domain's folder under hw2_data/digits/
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
SHIPPED_METHOD = "dann-plus"  # the best row of the README's table: what hw2_3.sh uses


def _domains_named(path: str | os.PathLike) -> list[str]:
    """The domain names (case-insensitive) in ``path`` as given or, when it names none, in its absolute
    and then its resolved form: ``.`` inside ``…/usps/test`` is usps, and so is a link named ``usps``."""
    for form in (str(path), os.path.abspath(path), os.path.realpath(path)):  # realpath: no error on link loops
        found = [d for d in DOMAINS if d in form.lower()]
        if found:
            return found
    return []


def domain_of(path: str | os.PathLike) -> str:
    """``svhn`` or ``usps``: the one domain named in ``path`` (as given, else its absolute and then its
    resolved form); neither or both is a UserError. The only rule by which a domain is told."""
    found = _domains_named(path)
    if len(found) != 1:
        why = "neither" if not found else "both"
        raise UserError(f"{path}: the path contains {why} of 'svhn' and 'usps'; it must name exactly one target domain")
    return found[0]


def shipped_checkpoint(domain: str, method: str = SHIPPED_METHOD) -> Path:
    """``p3/checkpoints/<domain>_<method>.pt``: every row of the report's table is shipped."""
    return CHECKPOINT_DIR / f"{domain}_{method}.pt"
