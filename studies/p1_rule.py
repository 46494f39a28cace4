"""Apply P1's shipping rule to logged sweeps and print the five-seed table it decides on.

    python studies/p1_rule.py logs/p1/*/*front*.jsonl [--solver dpm++2m --steps 10]

The rule (REPORT.md, P1): over starting seeds 0–4 at the shipped solver, the grader's LeNet must
read at least ``--min-mean`` on average and every digit at least ``--min-digit`` at every seed;
among the (model, setting) pairs that pass, the one with the lowest mean Fréchet distance (our
features; the floor is printed beside it) ships. A pair is a log file and the checkpoint its
``studies/p1_sweep.py --log`` rows name, with the setting's label (``studies/p1_front.py``); only pairs
logged at all five seeds with 1000 digits count (rows from before the count was logged had 1000), and a later row for the same seed replaces an
earlier one. Prints a Markdown table, best first, and the winner; ``--plain --top N`` prints the N
best rows in plain words (model version, setting: REPORT.md's table), the full table without them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from p1_front import label

SEEDS = (0, 1, 2, 3, 4)


def five_seed_rows(logs: list[Path], solver: str, steps: int) -> dict[tuple[str, str], list[dict]]:
    """("log: checkpoint", setting label) → its rows at seeds 0–4, for pairs logged at all five."""
    pairs: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for log in logs:
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if row.get("solver") != solver or row.get("steps") != steps or row.get("digits", 1000) != 1000:
                continue
            model = f"{log.name}: {row.get('checkpoint', '?')}"
            pairs[(model, label(row))][row.get("seed") or 0] = row  # unseeded rows are seed 0
    return {key: [rows[s] for s in SEEDS] for key, rows in pairs.items() if all(s in rows for s in SEEDS)}


def verdicts(pairs: dict, min_mean: float, min_digit: float) -> list[dict]:
    """One summary per pair, best (passing, then lowest mean distance) first."""
    out = []
    for (checkpoint, setting), rows in pairs.items():
        mean = sum(r["accuracy"] for r in rows) / len(rows)
        worst = min(r["worst_accuracy"] for r in rows)
        out.append(
            {
                "checkpoint": checkpoint,
                "setting": setting,
                "accuracies": [r["accuracy"] for r in rows],
                "mean": mean,
                "worst": worst,
                "frechet": sum(r["frechet"] for r in rows) / len(rows),
                "floor": rows[0]["frechet_floor"],
                "passes": mean >= min_mean - 1e-9 and worst >= min_digit - 1e-9,
            }
        )
    return sorted(out, key=lambda v: (not v["passes"], v["frechet"]))


def plain_model(checkpoint: str) -> str:
    """``stage14_step1500.front.jsonl: x.pt`` → ``stage 14 at step 1,500``; other logs by their name."""
    found = re.match(r"stage(\d+)(?:_step(\d+))?\.", checkpoint)
    if not found:
        return checkpoint.split(".")[0]
    return f"stage {found[1]}" + (f" at step {int(found[2]):,}" if found[2] else "")


def plain_setting(setting: str) -> str:
    """``dpm++2m 10 s=3 φ=1 t∈[0,499]`` → ``guided: s = 3, rescale φ = 1, at t ≤ 499``; ``… s=1`` → model alone."""
    scale, auto = re.search(r"\bs=([\d.]+)", setting), re.search(r"\ba=([\d.]+)", setting)
    if auto:
        return f"autoguidance, a = {auto[1]}"
    if scale is None or scale[1] == "1":
        return "model alone (s = 1)"
    words = [f"guided: s = {scale[1]}"]
    rescale, window = re.search(r"φ=([\d.]+)", setting), re.search(r"t∈\[(\d+),(\d+)\]", setting)
    if rescale:
        words.append(f"rescale φ = {rescale[1]}")
    if window:
        words.append(f"at t ≤ {window[2]}" if window[1] == "0" else f"at {window[1]} ≤ t ≤ {window[2]}")
    return ", ".join(words)


def table(summaries: list[dict], plain: bool = False) -> str:
    lines = [
        f"| {'model version' if plain else 'model'} | setting | accuracy at seeds 0–4 | mean | lowest digit "
        "| mean Fréchet (floor) | passes |",
        "|---|---|---|---:|---:|---:|:---:|",
    ]
    for v in summaries:
        seeds = " / ".join(f"{100 * a:.1f}" for a in v["accuracies"])
        model, setting = (
            (plain_model(v["checkpoint"]), plain_setting(v["setting"])) if plain else (v["checkpoint"], v["setting"])
        )
        lines.append(
            f"| {model} | {setting} | {seeds} | {100 * v['mean']:.2f} % | {100 * v['worst']:.0f} % | "
            f"{v['frechet']:.3f} ({v['floor']:.3f}) | {'yes' if v['passes'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python studies/p1_rule.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("logs", nargs="+", type=Path, help="studies/p1_sweep.py --log files")
    p.add_argument("--solver", default="dpm++2m", help="the shipped solver")
    p.add_argument("--steps", type=int, default=10, help="the shipped solver's steps")
    p.add_argument("--min-mean", type=float, default=0.99, help="lowest mean LeNet accuracy over the five seeds")
    p.add_argument("--min-digit", type=float, default=0.97, help="lowest accuracy of any digit at any seed")
    p.add_argument("--top", type=int, help="print only the N best rows (all by default)")
    p.add_argument("--plain", action="store_true", help="name models and settings in plain words")
    args = p.parse_args(argv)
    summaries = verdicts(five_seed_rows(args.logs, args.solver, args.steps), args.min_mean, args.min_digit)
    if not summaries:
        sys.exit("error: no (model, setting) logged at all five seeds with 1000 digits")
    print(table(summaries[: args.top], args.plain))
    if args.top and args.top < len(summaries):
        print(f"\n({len(summaries) - args.top} more pairs below these: python studies/p1_rule.py without --top)")
    best = summaries[0]
    name = f"{plain_model(best['checkpoint'])}, {plain_setting(best['setting'])}" if args.plain else None
    verdict = (name or f"{best['checkpoint']} at {best['setting']}") if best["passes"] else "nothing passes"
    print(f"\nThe rule ships: {verdict}.")


if __name__ == "__main__":
    main()
