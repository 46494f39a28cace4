"""The tree answers "where is X" by its folder names: checkpoints/ hold exactly the manifest's files,
README's layout block names every top-level folder, and every log made before runs recorded their
commit is dated by one in logs/commits.tsv."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

GIT = shutil.which("git") is not None and (REPO / ".git").exists()


def tracked(*patterns: str) -> list[str]:
    return subprocess.run(
        ["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()


def manifest_paths() -> list[str]:
    return sorted(e["path"] for e in json.loads((REPO / "checkpoints.json").read_text())["checkpoints"])


@pytest.mark.skipif(not GIT, reason="needs a git checkout (git ls-files)")
def test_checkpoint_folders_hold_exactly_the_manifest():
    assert sorted(tracked("*/checkpoints/*")) == manifest_paths()


def test_checkpoint_folders_on_disk_hold_the_manifest_and_nothing_else():
    on_disk = sorted(str(p.relative_to(REPO)) for p in REPO.glob("p*/checkpoints/**/*") if p.is_file())
    assert on_disk == manifest_paths()


def layout_block() -> dict[str, str]:
    """README's layout block: folder → its one line."""
    text = (REPO / "README.md").read_text()
    lines = re.search(r"## Layout\n\n```\n(.*?)```", text, re.S).group(1).splitlines()
    assert len({line.split()[0] for line in lines}) == len(lines), "a folder named twice"
    return {line.split()[0]: line for line in lines}


@pytest.mark.skipif(not GIT, reason="needs a git checkout (git ls-files)")
def test_readme_layout_names_each_top_level_folder_once():
    folders = {path.split("/")[0] + "/" for path in tracked() if "/" in path}
    block = layout_block()
    assert set(block) == folders  # every folder with tracked files, and no line for a folder that is not there
    assert all(len(line.split()) > 1 for line in block.values())  # each says what it holds


def commits_tsv() -> dict[str, tuple[str, str]]:
    """log → (the commit that added its first row, the one that added its last row)."""
    rows = [line.split("\t") for line in (REPO / "logs" / "commits.tsv").read_text().splitlines()]
    rows = [r for r in rows if r[0] and not r[0].startswith("#") and r[0] != "log"]
    assert all(len(r) == 3 and all(re.fullmatch(r"[0-9a-f]{40}", c) for c in r[1:]) for r in rows), rows
    return {r[0]: (r[1], r[2]) for r in rows}


def rows_of(log: str) -> list[str]:
    path = REPO / log / "metrics.jsonl" if (REPO / log).is_dir() else REPO / log
    return [line for line in path.read_text().splitlines() if line.strip()]


def unrecorded_logs() -> list[str]:
    """Every log whose own record names no commit: P1's files, and P3 runs converted from args.json."""
    found = [str(p.relative_to(REPO)) for p in (REPO / "logs" / "p1").rglob("*.jsonl")]
    for record in (REPO / "logs" / "p3").glob("*/*/record.jsonl"):
        first = json.loads(record.read_text().splitlines()[0])
        if first.get("commit") is None and record.parent.parent.name == "studies":
            found.append(str(record.parent.relative_to(REPO)))
    return sorted(found)


def test_every_older_study_log_names_the_commit_that_logged_it():
    listed = commits_tsv()
    assert sorted(p for p in listed if not p.startswith("logs/p3/shipped")) == unrecorded_logs()
    assert all((REPO / p).exists() for p in listed)


@pytest.mark.skipif(not GIT, reason="needs a git checkout")
def test_each_commit_named_is_the_one_that_added_that_row():
    """The named commit holds the row (in any file of p1/, p3/ or logs/) and its parent does not."""

    def holds(commit: str, row: str) -> bool:
        found = subprocess.run(["git", "grep", "-q", "-F", "-e", row, commit, "--", "p1", "p3", "logs"], cwd=REPO)
        return found.returncode == 0

    for log, (first, last) in commits_tsv().items():
        rows = rows_of(log)
        for commit, row in ((first, rows[0]), (last, rows[-1])):
            assert holds(commit, row) and not holds(commit + "^", row), (log, commit)


def test_recipes_studies_and_benchmarks_stay_apart():
    # recipes remake what ships (no run of theirs is named as a study's); studies write no shipped file
    for script in (REPO / "recipes").glob("*.sh"):
        assert "_ablate_" not in script.read_text() and "_sweep_" not in script.read_text(), script
    for script in [
        p for folder in ("studies", "bench") for p in (REPO / folder).iterdir() if p.suffix in (".py", ".sh")
    ]:
        text = script.read_text()
        assert "p3_ship" not in text and "checkpoints.json" not in text, script


def test_every_p3_record_names_the_folders_its_logs_are_kept_under():
    """A run made in a folder of another name says so (``ran_as``): its own folder and the first step
    its refinement started from both lead to logs kept here."""
    kept = {p.parent.name for p in (REPO / "logs" / "p3").glob("*/*/record.jsonl")}
    for record in (REPO / "logs" / "p3").glob("*/*/record.jsonl"):
        for line in record.read_text().splitlines():
            sitting = json.loads(line)
            ran_as = sitting.get("ran_as") or {}
            own = Path(sitting["args"]["out_dir"]).name
            assert ran_as.get(own, own) == record.parent.name, record
            if sitting["args"].get("init_from"):
                started = Path(sitting["args"]["init_from"]).parent.name
                assert ran_as.get(started, started) in kept, (record, started)
