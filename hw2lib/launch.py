"""Run one of this checkout's entry modules as ``python -m`` would, with this checkout first on sys.path.

    python3 /path/to/hw2/hw2lib/launch.py p1.generate -- OUT_DIR

``python -m p1.generate`` puts the working directory ahead of PYTHONPATH, so a ``hw2_*.sh`` started
from inside another copy of this repository would run that copy's code. Started as a script, Python
puts this file's folder first instead; that entry is replaced by the checkout root, so the modules
of the checkout that holds this file are the ones imported, wherever the command runs from.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python3 hw2lib/launch.py MODULE [ARGS…]")
    module = sys.argv[1]
    sys.path[0] = str(ROOT)  # was this file's folder (hw2lib/): its modules are not top-level names
    sys.argv = [sys.argv[0], *sys.argv[2:]]  # what the module's argparse sees, as under python -m
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
