"""hw2_download.sh verifies the manifest's checkpoints: sizes and sha256, one line each, nothing fetched."""

import hashlib
import json
from pathlib import Path

import pytest

from conftest import REPO, run_script

PAYLOAD = b"checkpoint bytes " * 1000


def manifest(tmp_path: Path, sha: str = hashlib.sha256(PAYLOAD).hexdigest(), size: int = len(PAYLOAD)) -> Path:
    path = tmp_path / "manifest.json"
    entry = {"name": "demo", "path": "ckpt/demo.pt", "size": size, "sha256": sha}
    path.write_text(json.dumps({"checkpoints": [entry]}))
    return path


def verify(tmp_path: Path, manifest_path: Path):
    return run_script("hw2_download.sh", "--manifest", manifest_path, "--root", tmp_path)


def write_checkpoint(tmp_path: Path, data: bytes) -> Path:
    (tmp_path / "ckpt").mkdir(exist_ok=True)
    path = tmp_path / "ckpt" / "demo.pt"
    path.write_bytes(data)
    return path


def test_a_matching_file_is_ok(tmp_path):
    write_checkpoint(tmp_path, PAYLOAD)
    result = verify(tmp_path, manifest(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok       demo (ckpt/demo.pt)\n"


@pytest.mark.parametrize(
    "data, state", [(None, "missing"), (b"damaged", "checksum mismatch"), (PAYLOAD[:-1] + b"?", "checksum mismatch")]
)
def test_a_missing_or_damaged_file_is_named_with_its_restore_command(tmp_path, data, state):
    if data is not None:
        write_checkpoint(tmp_path, data)
    result = verify(tmp_path, manifest(tmp_path))
    assert result.returncode == 1
    assert result.stdout == (
        f"FAILED   demo (ckpt/demo.pt): {state}; it is kept in git, so restore it with: git checkout -- ckpt/demo.pt\n"
    )
    assert result.stderr == "error: 1 checkpoint(s) not usable: ckpt/demo.pt\n"
    if data is not None:
        assert (tmp_path / "ckpt" / "demo.pt").read_bytes() == data, "verifying never changes a file"


def test_rehash_records_the_present_file(tmp_path):
    write_checkpoint(tmp_path, b"retrained")
    m = manifest(tmp_path)
    assert run_script("hw2_download.sh", "--manifest", m, "--root", tmp_path, "--rehash").returncode == 0
    (entry,) = json.loads(m.read_text())["checkpoints"]
    assert entry["size"] == 9 and entry["sha256"] == hashlib.sha256(b"retrained").hexdigest()
    assert verify(tmp_path, m).returncode == 0


def test_help_says_it_verifies_and_fetches_nothing():
    result = run_script("hw2_download.sh", "--help")
    assert result.returncode == 0 and "nothing is fetched" in result.stdout


def test_bad_manifest(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    result = verify(tmp_path, tmp_path / "m.json")
    assert (
        result.returncode == 2
        and result.stderr.startswith("error: ")
        and "not a valid checkpoint manifest" in result.stderr
    )


@pytest.mark.slow
def test_shipped_manifest_verifies():
    result = run_script("hw2_download.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    entries = json.loads((REPO / "checkpoints.json").read_text())["checkpoints"]
    assert len(lines) == len(entries) and all(line.startswith("ok") for line in lines)
    assert all(set(e) == {"name", "path", "size", "sha256"} for e in entries)
