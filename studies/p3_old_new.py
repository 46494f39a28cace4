"""Two P3 accuracy tables side by side (``p3.report``'s accuracy.csv), e.g. a previous release's against today's.

    git show v1:figures/p3/accuracy.csv > /tmp/old.csv
    python studies/p3_old_new.py /tmp/old.csv figures/p3/accuracy.csv --names "previous release" "retrained"

Prints one Markdown table: a row per method of the new table, SVHN and USPS accuracy of each side.
"""

from __future__ import annotations

import argparse
import csv


def read(path: str) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["method"]: row for row in csv.DictReader(handle)}


def cell(row: dict, column: str) -> str:
    value = row.get(column, "") if row else ""
    return f"{100 * float(value):.2f} %" if value else "—"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--names", nargs=2, default=["old", "new"], help="column headings for the two tables")
    args = p.parse_args()
    old, new = read(args.old), read(args.new)
    a, b = args.names
    print(f"| row | SVHN: {a} | SVHN: {b} | USPS: {a} | USPS: {b} |")
    print("|---|---:|---:|---:|---:|")
    for method in new:
        o, n = old.get(method), new[method]
        print(
            f"| {method} | {cell(o, 'mnistm_to_svhn')} | {cell(n, 'mnistm_to_svhn')} "
            f"| {cell(o, 'mnistm_to_usps')} | {cell(n, 'mnistm_to_usps')} |"
        )


if __name__ == "__main__":
    main()
