"""P3's protocol by role (recipes/p3_protocol.py) and shipping all or nothing (recipes/p3_ship.py)."""

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import torch
from p3_protocol import check_runs, violations

from conftest import REPO, run

LOGS = REPO / "logs" / "p3" / "shipped"


def test_every_shipped_row_trained_within_the_protocol():
    """Labelled MNIST-M and unlabelled target images only: every shipped run's logged arguments pass."""
    runs = sorted(p.parent for p in LOGS.glob("*/record.jsonl"))
    assert len(runs) >= 10
    assert check_runs(runs) == []


@pytest.fixture
def digits(tmp_path) -> Path:
    """hw2_data/digits with the course's folders, the stand-in beside them, and links to both."""
    root = tmp_path / "hw2_data" / "digits"
    for name in ("mnistm", "svhn", "usps", "svhn_standin"):
        (root / name).mkdir(parents=True)
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "mnistm").symlink_to(root / "svhn_standin")  # named like the source, is not
    (tmp_path / "links" / "m").symlink_to(root / "mnistm")  # named otherwise, is the source
    return root


ADAPTED = [
    # (how the source is spelt, relative to tmp_path where relative; whether it is MNIST-M)
    ("hw2_data/digits/mnistm", True),
    ("hw2_data/digits/svhn_standin", False),
    ("{d}/usps/../mnistm", True),
    ("{d}/usps/../svhn_standin", False),
    ("{d}//mnistm", True),
    ("{d}//svhn_standin", False),
    ("{d}/mnistm/", True),
    ("{t}/links/m", True),
    ("{t}/links/mnistm", False),
    ("{d}/svhn", False),  # real SVHN is the target, never a labelled source of an adapted run
]


@pytest.mark.parametrize("spelling, ok", ADAPTED)
@pytest.mark.parametrize("with_digits", [False, True])
def test_adapted_runs_learn_from_the_mnistm_folder_however_it_is_spelt(
    digits, tmp_path, monkeypatch, spelling, ok, with_digits
):
    monkeypatch.chdir(tmp_path)
    source = spelling.format(d=digits, t=tmp_path)
    for name in ("svhn_dann-plus-first_s1", "svhn_dann", "svhn_source-only"):
        found = violations(name, {"source": [source], "target": f"{digits}/svhn"}, digits if with_digits else None)
        assert (found == []) == ok, (name, source, found)
        if not ok:
            assert "its one labelled source must be mnistm/" in found[0]


def test_a_run_learns_from_one_source_only(digits):
    both = {"source": [f"{digits}/mnistm", f"{digits}/svhn_standin"], "target": f"{digits}/svhn"}
    assert len(violations("svhn_dann", both, digits)) == 1
    assert len(violations("svhn_dann", {"target": f"{digits}/svhn"}, digits)) == 1  # p3.train without a source


def test_with_digits_the_folders_are_those_of_that_copy(digits, tmp_path):
    """A folder named mnistm that is not DIGITS/mnistm is refused when DIGITS is given."""
    other = tmp_path / "elsewhere" / "mnistm"
    other.mkdir(parents=True)
    args = {"source": [str(other)], "target": f"{digits}/svhn"}
    assert violations("svhn_dann", args) == []
    assert "must be mnistm/" in violations("svhn_dann", args, digits)[0]


@pytest.mark.parametrize(
    "source, target, ok",
    [
        ("{d}/svhn", "{d}/svhn", True),
        ("{d}/usps/../svhn", "{d}//svhn", True),  # one folder, spelt two ways
        ("{d}/svhn_standin", "{d}/svhn_standin", False),  # its own target, but not the svhn folder
        ("{d}/mnistm", "{d}/svhn", False),
        ("{d}/usps", "{d}/svhn", False),
    ],
)
def test_target_only_learns_from_its_own_target(digits, source, target, ok):
    args = {"source": [source.format(d=digits)], "target": target.format(d=digits)}
    assert (violations("svhn_target-only", args, digits) == []) == ok


def test_refinements_see_the_target_alone_from_their_own_first_step(digits):
    args = {"init_from": "/r/svhn_dann-plus-first_s0/best.pt", "target": f"{digits}//svhn"}
    assert violations("svhn_dann-plus_s0", args, digits) == []
    assert "not the svhn folder" in violations("svhn_dann-plus_s0", {**args, "target": f"{digits}/usps"}, digits)[0]
    assert "not its own first step" in violations("svhn_dann", args, digits)[0]
    assert "not a run of the report's table" in violations("svhn_ablate_x", args, digits)[0]
    for other in ("/r/svhn_target-only/best.pt", "/r/svhn_dann-plus-first_s1/best.pt", "/r/x/best.pt"):
        assert "not its own first step" in violations("svhn_dann-plus_s0", {**args, "init_from": other}, digits)[0]
    renamed = {"x": "svhn_dann-plus-first_s0"}  # a record's ran_as: the folder it ran in → its shipped name
    assert violations("svhn_dann-plus_s0", {**args, "init_from": "/r/x/best.pt"}, digits, renamed) == []


# -- shipping, all or nothing -------------------------------------------------------------------------

ROWS = ("dann", "source-only", "target-only")


def make_runs(runs: Path, digits: Path, vals: dict[str, list[float]]) -> None:
    """A RUNS_DIR as recipes/p3_train_all.sh leaves it: DANN+ seeds (val accuracies ``vals``), their first
    steps, the other rows, and the scripts' .log files beside the run folders."""

    def make(name: str, args: dict, val: float) -> None:
        (runs / name).mkdir(parents=True)
        (runs / name / "record.jsonl").write_text(json.dumps({"sitting": 1, "args": args}) + "\n")
        (runs / name / "metrics.jsonl").write_text(json.dumps({"step": 1, "val_accuracy": val}) + "\n")
        torch.save({"val_accuracy": val, "name": name}, runs / name / "best.pt")
        (runs / f"{name}.log").write_text("a script's log, not a run\n")

    for domain, seed_vals in vals.items():
        target = f"{digits}/{domain}"
        for seed, val in enumerate(seed_vals):
            make(f"{domain}_dann-plus-first_s{seed}", {"source": [f"{digits}/mnistm"], "target": target}, 0.5)
            first = runs / f"{domain}_dann-plus-first_s{seed}" / "best.pt"
            make(f"{domain}_dann-plus_s{seed}", {"init_from": str(first), "target": target}, val)
        for row in ROWS:
            source = target if row == "target-only" else f"{digits}/mnistm"
            make(f"{domain}_{row}", {"source": [source], "target": target}, 0.4)


@pytest.fixture
def shipping(tmp_path, digits):
    """(a checkout to ship into, a RUNS_DIR); SVHN's seed 1 and USPS's seed 0 are the best."""
    repo = tmp_path / "repo"
    (repo / "logs" / "p3" / "shipped" / "old_run").mkdir(parents=True)
    (repo / "logs" / "p3" / "shipped" / "old_run" / "record.jsonl").write_text("{}\n")
    (repo / "checkpoints.json").write_bytes((REPO / "checkpoints.json").read_bytes())
    for entry in json.loads((REPO / "checkpoints.json").read_text())["checkpoints"]:
        (repo / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
        (repo / entry["path"]).write_bytes(b"old " + entry["path"].encode())
    runs = tmp_path / "runs"
    make_runs(runs, digits, {"svhn": [0.80, 0.85, 0.85], "usps": [0.98, 0.97]})
    return repo, runs


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root``: relative path → sha256 (what "unchanged" means)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def ship(repo: Path, digits: Path, runs: Path, patch: str = "") -> "subprocess.CompletedProcess":  # noqa: F821
    """recipes/p3_ship.py as a real process; ``patch`` is Python run first (to fail or signal on cue)."""
    code = f"{patch}\nimport runpy, sys\nsys.argv = ['p3_ship.py', *sys.argv[1:]]\n"
    code += f"runpy.run_path({str(REPO / 'recipes' / 'p3_ship.py')!r}, run_name='__main__')"
    return run([sys.executable, "-c", code, digits, runs, "--repo", repo])


def test_ship_copies_the_best_seed_logs_and_hashes(shipping, digits):
    repo, runs = shipping
    result = run(["bash", REPO / "recipes" / "p3_ship.sh", digits, runs, "--repo", repo])
    assert result.returncode == 0, result.stderr
    assert "svhn_dann-plus: svhn_dann-plus_s1" in result.stdout  # 0.85 at seeds 1 and 2: the lower seed
    assert "usps_dann-plus: usps_dann-plus_s0" in result.stdout
    shipped = repo / "p3" / "checkpoints"
    for name, run_name in [("svhn_dann-plus", "svhn_dann-plus_s1"), ("usps_dann-plus", "usps_dann-plus_s0")]:
        assert torch.load(shipped / f"{name}.pt", weights_only=True)["name"] == run_name
    for domain in ("svhn", "usps"):
        for row in ROWS:
            assert torch.load(shipped / f"{domain}_{row}.pt", weights_only=True)["name"] == f"{domain}_{row}"
    logged = sorted(p.name for p in (repo / "logs" / "p3" / "shipped").iterdir())
    assert logged == sorted(p.name for p in runs.iterdir() if p.is_dir())  # every run, no .log file, no old log
    assert sorted(p.name for p in (repo / "logs" / "p3" / "shipped" / "svhn_dann").iterdir()) == [
        "metrics.jsonl",
        "record.jsonl",
    ]
    manifest = {e["path"]: e for e in json.loads((repo / "checkpoints.json").read_text())["checkpoints"]}
    for path, entry in manifest.items():
        data = (repo / path).read_bytes()
        if path.startswith("p3/"):
            assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
        else:  # P1's entries are left as they were
            assert data.startswith(b"old ")
    assert [p.name for p in (repo / "p3").iterdir()] == ["checkpoints"]  # no staging left


def test_ship_refuses_a_run_outside_the_protocol(shipping, digits):
    repo, runs = shipping
    record = runs / "svhn_dann" / "record.jsonl"  # its second sitting strayed from the protocol
    stray = {"source": [f"{digits}/usps/../svhn_standin"], "target": f"{digits}/svhn"}
    with open(record, "a") as handle:
        handle.write(json.dumps({"sitting": 2, "args": stray}) + "\n")
    before = tree(repo)
    result = ship(repo, digits, runs)
    assert result.returncode == 2 and "outside the protocol, nothing shipped" in result.stderr
    assert "svhn_dann: learns from" in result.stderr
    assert tree(repo) == before


def test_ship_failing_midway_leaves_the_tree_unchanged(shipping, digits):
    repo, runs = shipping
    (runs / "usps_target-only" / "best.pt").unlink()
    (runs / "usps_target-only" / "best.pt").mkdir()  # found only when its copy is attempted
    before = tree(repo)
    result = ship(repo, digits, runs)
    assert result.returncode == 2 and "usps_target-only/best.pt" in result.stderr, result.stderr
    assert tree(repo) == before
    assert [p.name for p in (repo / "p3").iterdir()] == ["checkpoints"]


# The process sends itself a real SIGTERM at the n-th call of ``name`` whose arguments mention ``where``:
# the 5th file copied (while staging) or the 3rd move out of the staging folder (while swapping).
SIGNAL_AT = """
import os, shutil, signal
def on_cue(name, n, where):
    module, attr = name.split('.')
    real, calls = getattr(__import__(module), attr), []
    def patched(*a, **k):
        if where in str(a):
            calls.append(1)
            if len(calls) == n:
                os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)
    setattr(__import__(module), attr, patched)
on_cue({name!r}, {n}, {where!r})
"""


def test_ship_interrupted_while_staging_leaves_the_tree_unchanged(shipping, digits):
    repo, runs = shipping
    before = tree(repo)
    result = ship(repo, digits, runs, SIGNAL_AT.format(name="shutil.copyfile", n=5, where=""))
    assert result.returncode == 128 + signal.SIGTERM and "interrupted by SIGTERM" in result.stderr, result.stderr
    assert tree(repo) == before
    assert [p.name for p in (repo / "p3").iterdir()] == ["checkpoints"]


def test_ship_interrupted_while_swapping_finishes_the_swap_first(shipping, digits):
    repo, runs = shipping
    result = ship(repo, digits, runs, SIGNAL_AT.format(name="os.replace", n=3, where=".ship-staging-"))
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    after = tree(repo)
    assert not any(
        v == hashlib.sha256(b"old " + k.encode()).hexdigest() for k, v in after.items() if k.startswith("p3/")
    )
    assert "old_run" not in {p.name for p in (repo / "logs" / "p3" / "shipped").iterdir()}
    assert [p.name for p in (repo / "p3").iterdir()] == ["checkpoints"]


def test_ship_refuses_a_refinement_of_another_checkpoint(shipping, digits):
    repo, runs = shipping
    record = runs / "svhn_dann-plus_s1" / "record.jsonl"
    stray = {"init_from": str(runs / "svhn_target-only" / "best.pt"), "target": f"{digits}/svhn"}
    record.write_text(json.dumps({"sitting": 1, "args": stray}) + "\n")
    before = tree(repo)
    result = ship(repo, digits, runs)
    assert result.returncode == 2 and "svhn_dann-plus_s1: refines" in result.stderr
    assert tree(repo) == before


def test_ship_refuses_a_record_that_starts_after_step_0(shipping, digits):
    repo, runs = shipping
    record = runs / "usps_dann" / "record.jsonl"
    line = json.loads(record.read_text())
    record.write_text(json.dumps({**line, "step": 500}) + "\n")  # its first sittings' lines are gone
    result = ship(repo, digits, runs)
    assert result.returncode == 2 and "usps_dann: its record starts at step 500" in result.stderr


def test_ship_killed_mid_swap_is_put_back_by_the_next_run(shipping, digits):
    import p3_ship

    repo, runs = shipping
    before = tree(repo)
    killed = ship(repo, digits, runs, SIGNAL_AT.format(name="os.replace", n=3, where=".ship-staging-").replace(
        "signal.SIGTERM", "signal.SIGKILL"))  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    assert tree(repo) != before  # half swapped: what a kill leaves
    p3_ship.recover(repo)
    assert tree(repo) == before
    assert [p.name for p in (repo / "p3").iterdir()] == ["checkpoints"]


def test_ship_clears_a_killed_runs_staging_and_ships(shipping, digits):
    repo, runs = shipping
    (repo / "p3" / ".ship-staging-dead" / "checkpoints").mkdir(parents=True)  # killed while staging
    result = ship(repo, digits, runs)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (repo / "p3").iterdir()] == ["checkpoints"]


def test_ship_keeps_the_replaced_files_when_putting_back_fails(shipping, digits, monkeypatch):
    import p3_ship

    repo, runs = shipping
    real, calls = os.replace, []

    def failing(src, dst):
        if ".ship-staging-" in f"{src}{dst}":
            calls.append(dst)
        if len(calls) in (7, 8):  # the 4th checkpoint fails, and so does the first move back
            raise OSError(5, "Input/output error", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(p3_ship.KeptStaging, match="the replaced files are kept in"):
        p3_ship.ship(digits, runs, repo)
    staging = [p for p in (repo / "p3").iterdir() if p.name.startswith(".ship-staging-")]
    assert len(staging) == 1 and (staging[0] / "swap.json").is_file()
    kept = [p.read_bytes() for p in (staging[0] / "old").iterdir() if p.is_file()]
    assert any(data.startswith(b"old p3/checkpoints/") for data in kept)  # an original the tree lost, kept
    monkeypatch.setattr(os, "replace", real)
    p3_ship.recover(repo)  # the next run puts back what the journal lists
    for entry in json.loads((REPO / "checkpoints.json").read_text())["checkpoints"]:
        assert (repo / entry["path"]).read_bytes() == b"old " + entry["path"].encode()


def test_ship_failing_during_the_swap_puts_every_file_back(shipping, digits, monkeypatch):
    import p3_ship

    repo, runs = shipping
    before = tree(repo)
    real, calls = os.replace, []

    def failing(src, dst):
        if ".ship-staging-" in f"{src}{dst}":  # the swap's moves
            calls.append(dst)
        if len(calls) == 7:  # the 4th checkpoint: 3 moved in, their old files set aside, the 4th's too
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space left"):
        p3_ship.ship(digits, runs, repo)
    assert tree(repo) == before
    assert [p.name for p in (repo / "p3").iterdir()] == ["checkpoints"]


@pytest.mark.parametrize("target", ["svhn", "usps"])
def test_the_recipe_trains_inside_the_protocol_on_the_course_layout(target):
    """Every command recipes/p3_train_all.sh runs for a target names DATA/<target> (the course's folder
    names) and passes the protocol, parsed by its trainer's own parser."""
    from p3 import refine, train

    printed = run(["bash", REPO / "recipes" / "p3_train_all.sh", "/D", "/R", target], env={"P3_PRINT_ONLY": "1"})
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert len(lines) == 9  # three seeds × (first step, refinement), then DANN, source-only, target-only
    for line in lines:
        module, *argv = line.split()
        args = vars({"p3.train": train.build_parser, "p3.refine": refine.build_parser}[module]().parse_args(argv))
        assert args["target"] == f"/D/{target}", line
        assert violations(Path(args["out_dir"]).name, args) == [], line
