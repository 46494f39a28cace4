"""Average the weights of several P1 checkpoints of one model (a "model soup" of one training line).

    python studies/p1_average.py runs/avg.pt CKPT_A CKPT_B [CKPT_C …]
    python studies/p1_sweep.py --checkpoint runs/avg.pt --classifier … --real … --guidance 1 3

Successive stages of p1.train start from each other's EMA, so their weights lie in one basin and
their plain mean is a working model: a post-hoc, longer average of the kind Karras et al. (2024,
"Analyzing and improving the training dynamics of diffusion models") reconstruct from snapshots.
Every checkpoint must hold the same configuration and schedule; the mean is taken in fp32 and
written in fp16, with the last checkpoint's other fields (``step``, its evaluation) and
``averaged_from`` naming the inputs. A study tool: what ships is chosen by studies/p1_sweep.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw2lib.checkpoints import half_state_dict, load_checkpoint, save_checkpoint
from hw2lib.cli import UserError, run_main
from hw2lib.files import check_writable_file
from p1.train import canonical_config


def model_config(ckpt: dict, name: str) -> dict:
    try:
        return canonical_config(ckpt["config"])
    except (TypeError, KeyError) as err:
        raise UserError(f"{name}: checkpoint config does not describe a P1 model ({err})") from None


def average(checkpoints: Sequence[dict], names: Sequence[str]) -> dict:
    """The checkpoint whose weights are the mean of ``checkpoints``' (same config and schedule required)."""
    config, schedule = model_config(checkpoints[0], names[0]), checkpoints[0]["schedule"]
    for ckpt, name in zip(checkpoints[1:], names[1:]):
        if model_config(ckpt, name) != config or ckpt["schedule"] != schedule:
            raise UserError(
                f"{name}: holds another model or schedule than {names[0]}; only one model's weights average"
            )
    weights = checkpoints[0]["model"]
    mean = {key: sum(c["model"][key].float() for c in checkpoints) / len(checkpoints) for key in weights}
    merged = dict(checkpoints[-1]) | {"model": half_state_dict(mean), "config": config}
    merged["averaged_from"] = [str(n) for n in names]
    return merged


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python studies/p1_average.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out", help="where to write the averaged checkpoint")
    p.add_argument("checkpoints", nargs="+", help="P1 inference checkpoints of one model (two or more)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    if len(args.checkpoints) < 2:
        raise UserError("give two or more checkpoints to average")
    out = check_writable_file(args.out, "the averaged checkpoint")
    loaded = [load_checkpoint(p, required=("model", "config", "schedule")) for p in args.checkpoints]
    save_checkpoint(average(loaded, args.checkpoints), out)
    print(f"{out}: mean of {len(loaded)} checkpoints")


if __name__ == "__main__":
    run_main(main)
