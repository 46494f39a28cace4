"""studies/p3_ablate.sh: the recipe with one thing changed, for either target. Its printed commands
(P3_PRINT_ONLY=1), parsed by the trainers' own parsers, change exactly the ingredient each arm names,
start from their own first step, and replay the logged study runs they name."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run
from hw2lib.metrics_log import read_metrics
from hw2lib.run_record import read_record, training_args

SCRIPT = REPO / "studies" / "p3_ablate.sh"


def commands(digits: Path, target: str, seed: int, *arms: str) -> list[tuple[str, dict]]:
    """(module, parsed arguments) of every command the script prints."""
    from p3 import refine, train

    printed = run(["bash", SCRIPT, digits, "/R", target, str(seed), *arms], env={"P3_PRINT_ONLY": "1"})
    assert printed.returncode == 0, printed.stderr
    found = []
    for line in printed.stdout.splitlines():
        module, *argv = line.split()
        found.append(
            (
                module,
                vars({"p3.train": train.build_parser, "p3.refine": refine.build_parser}[module]().parse_args(argv)),
            )
        )
    return found


@pytest.fixture
def digits(tmp_path):
    for name in ("mnistm", "svhn", "usps"):
        (tmp_path / name).mkdir()
    return tmp_path


def by_run(found):
    return {Path(args["out_dir"]).name: (module, args) for module, args in found}


def test_each_arm_changes_one_thing_from_the_recipe(digits):
    runs = by_run(commands(digits, "svhn", 1))
    recipe = training_args(runs["svhn_dann-plus_s1"][1])
    first = training_args(runs["svhn_dann-plus-first_s1"][1])

    def changed(name: str, against: dict) -> dict:
        args = training_args(runs[name][1])
        return {k: args[k] for k in args if args[k] != against.get(k) and k != "init_from"}

    assert changed("svhn_ablate_no-consistency_s1", recipe) == {"consistency": 0.0}
    assert changed("svhn_ablate_no-neighbours-first_s1", first) == {"neighbours": 0.0}
    assert changed("svhn_ablate_no-neighbours_s1", recipe) == {}
    assert changed("svhn_ablate_entropy-first_s1", first) == {"target_entropy": 0.1}
    assert changed("svhn_ablate_entropy_s1", recipe) == {"consistency": 0.0}
    sweep = {n: changed(n, recipe) for n in runs if "_sweep_" in n}
    assert sweep == {
        "svhn_sweep_consistency-0.5_s1": {"consistency": 0.5},
        "svhn_sweep_consistency-2_s1": {"consistency": 2.0},
        "svhn_sweep_confidence-0.9_s1": {"confidence": 0.9},
        "svhn_sweep_confidence-0.98_s1": {"confidence": 0.98},
        "svhn_sweep_lr-0.001_s1": {"lr": 0.001},
        "svhn_sweep_lr-0.01_s1": {"lr": 0.01},
    }
    for name, (module, args) in runs.items():  # every refinement starts from its own arm's first step
        assert args["seed"] == 1
        if module == "p3.refine":
            own = "svhn_dann-plus-first_s1" if "no-neighbours" not in name and "entropy" not in name else None
            own = own or name.replace("_s1", "-first_s1")
            assert Path(args["init_from"]) == Path("/R") / own / "best.pt", name
    assert (
        sum(n == "svhn_dann-plus-first_s1" for n in [Path(a["out_dir"]).name for _, a in commands(digits, "svhn", 1)])
        == 1
    )


@pytest.mark.parametrize("target, steps", [("svhn", 7000), ("usps", 2500)])
def test_the_upper_bound_learns_the_targets_labels_with_the_first_steps_input_for_both_steps_length(
    digits, target, steps
):
    runs = by_run(commands(digits, target, 2, "target-only-aug"))
    assert list(runs) == [f"{target}_target-only-aug_s2"]  # no first step: it does not start from one
    module, args = runs[f"{target}_target-only-aug_s2"]
    first = training_args(by_run(commands(digits, target, 2, "recipe"))[f"{target}_dann-plus-first_s2"][1])
    assert module == "p3.train" and args["source"] == [str(digits / target)] and args["target"] == str(digits / target)
    mine = training_args(args)
    assert {k: mine[k] for k in mine if mine[k] != first[k] and k != "source"} == {"steps": steps, "domain_weight": 0.0}


def test_the_arms_replay_the_logged_study_runs(digits):
    """Every study log the script names was made with the arguments the script prints (a flag added
    since must print its default)."""
    from p3 import refine, train

    parsers = {"p3.train": train.build_parser(), "p3.refine": refine.build_parser()}
    printed = {}
    for target in ("svhn", "usps"):
        for seed in (0, 1, 2):
            printed |= by_run(commands(digits, target, seed))
    logs = [p for p in sorted((REPO / "logs" / "p3" / "studies").iterdir()) if p.name in printed]
    named = {"svhn_ablate_no-consistency_s0", "svhn_ablate_entropy_s0", "usps_ablate_no-consistency_s0"}
    named |= {f"{t}_target-only-aug_s{seed}" for t in ("svhn", "usps") for seed in (0, 1, 2)}
    sweep = ("consistency-0.5", "consistency-2", "confidence-0.9", "confidence-0.98", "lr-0.001", "lr-0.01")
    named |= {f"svhn_sweep_{change}_s1" for change in sweep} | {"svhn_sweep_consistency-2_s2"}
    assert named <= {p.name for p in logs}

    def recipe(args: dict) -> dict:
        names = {k: [Path(s).name for s in v] if isinstance(v, list) else Path(v).name
                 for k, v in args.items() if k in ("source", "target")}  # fmt: skip
        return {**{k: v for k, v in training_args(args).items() if k != "init_from"}, **names}

    def refines(args: dict) -> str | None:  # a refinement's first step, by its folder's name
        return Path(args["init_from"]).parent.name if args.get("init_from") else None

    for log in logs:
        module, args = printed[log.name]
        for sitting in read_record(log):
            logged = dict(sitting["args"])
            for flag in set(args) - set(logged):
                assert args[flag] == parsers[module].get_default(flag), f"{log}: --{flag} not logged, yet set"
                logged[flag] = args[flag]
            assert recipe(logged) == recipe(args), log.name
            if "converted_from" not in sitting:  # recorded by the run (converted ones keep old folder names)
                assert sitting["commit"] and sitting["dirty"] is False, log.name
                assert refines(logged) == refines(args), f"{log.name} refines {refines(logged)}, not {refines(args)}"
        if log.name in named:  # ran to the end: its last evaluation is at the step its arguments name
            assert read_metrics(log / "metrics.jsonl")[-1]["step"] == args["steps"], log.name


@pytest.mark.parametrize(
    "argv, message",
    [
        (["svhn"], "usage: bash studies/p3_ablate.sh"),
        (["mnistm", "0"], "error: the third argument is usps or svhn, not 'mnistm'"),
        (["svhn", "one"], "error: SEED must be a whole number, not 'one'"),
        (["svhn", "0", "dropout"], "error: no arm 'dropout' for svhn"),
        (["usps", "0", "sweep"], "error: no arm 'sweep' for usps"),
        (["usps", "0", "entropy"], "error: no arm 'entropy' for usps"),
        (["svhn", "0", "recipe no-consistency"], "error: no arm 'recipe no-consistency' for svhn"),
        (["svhn", "07"], "error: SEED must be a whole number, not '07'"),
    ],
)
def test_bad_arguments_are_one_error_line_and_run_nothing(digits, argv, message):
    result = run(["bash", SCRIPT, digits, "/R", *argv], env={"P3_PRINT_ONLY": "1"})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1


def test_a_digits_folder_without_the_target_is_refused(tmp_path):
    (tmp_path / "mnistm").mkdir()
    result = run(["bash", SCRIPT, tmp_path, "/R", "svhn", "0"], env={"P3_PRINT_ONLY": "1"})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: {tmp_path} must hold mnistm/ and svhn/ (the course's hw2_data/digits)\n"


def test_the_reports_run_tables_are_what_report_sh_makes_from_the_logs(tmp_path):
    """figures/p3's tables of runs, which REPORT.md includes, are what report/report.sh's own lines print
    from the committed logs (run here with its figure folder elsewhere): a changed log, a hand-edited
    table or a changed command that was not rerun fails here."""
    lines = (REPO / "report" / "report.sh").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith('L="$HERE/logs/p3/shipped"'))
    last = next(i for i, line in enumerate(lines) if '> "$OUT/p3/upper_bound.md"' in line)
    block = "\n".join(lines[first : last + 1])
    assert block.count("studies/p3_study.py") == 2 and block.count('> "$OUT/p3/') == 2
    (tmp_path / "p3").mkdir()
    script = f'set -euo pipefail\nHERE="{REPO}"\nOUT="{tmp_path}"\npython3() {{ "{sys.executable}" "$@"; }}\n{block}\n'
    made = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=300, env={**os.environ, "LC_ALL": "C"}
    )
    assert made.returncode == 0, made.stderr
    for table in ("seeds.md", "upper_bound.md"):
        written = (tmp_path / "p3" / table).read_text()
        assert written.startswith("| run |") and "(3 runs): mean / min / max" in written, table
        assert (REPO / "figures" / "p3" / table).read_text() == written, table


def test_every_table_of_the_p3_studies_page_is_its_commands_output():
    """docs/p3-studies.md introduces each table with the `python studies/p3_study.py …` command that prints
    it: run from the repo on the committed logs, each command prints exactly the text that follows it."""
    page = (REPO / "docs" / "p3-studies.md").read_text()
    found = list(re.finditer(r"`(python studies/p3_study\.py\s[^`]+)`:\n\n", page))
    assert len(found) == page.count("\n| run |") == 5  # every table of runs is one that a command introduces
    for match in found:
        command = " ".join(match.group(1).split()).replace("python ", f'"{sys.executable}" ', 1)
        made = subprocess.run(
            ["bash", "-c", command],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "LC_ALL": "C"},
        )
        assert made.returncode == 0 and made.stdout.startswith("| run |"), (command, made.stderr)
        after = match.end() + len(made.stdout)
        assert page[match.end() : after] == made.stdout, command
        assert page[after : after + 1] in ("\n", ""), f"{command}: the page adds to its output"
