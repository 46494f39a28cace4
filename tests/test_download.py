"""hw2_download.sh against a local HTTP server: fetch, reject bad checksums, survive cut transfers, idempotence."""

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from conftest import REPO, run_script

PAYLOAD = b"checkpoint bytes " * 1000


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path == "/good.pt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/cut.pt":  # promises the whole file, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.hits = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def manifest(tmp_path: Path, url: str | None, sha: str = hashlib.sha256(PAYLOAD).hexdigest()) -> Path:
    entry = {"name": "demo", "path": "ckpt/demo.pt", "size": len(PAYLOAD), "sha256": sha}
    if url:
        entry["url"] = url
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"checkpoints": [entry]}))
    return path


def download(tmp_path: Path, manifest_path: Path):
    return run_script("hw2_download.sh", "--manifest", manifest_path, "--root", tmp_path)


def leftovers(tmp_path: Path) -> list[str]:
    folder = tmp_path / "ckpt"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_then_idempotent(server, tmp_path):
    url = f"http://127.0.0.1:{server.server_port}/good.pt"
    m = manifest(tmp_path, url)
    first = download(tmp_path, m)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("fetched  demo (ckpt/demo.pt) (missing before)")
    assert (tmp_path / "ckpt" / "demo.pt").read_bytes() == PAYLOAD
    hits = len(server.hits)
    second = download(tmp_path, m)
    assert second.returncode == 0 and second.stdout.strip() == "ok       demo (ckpt/demo.pt)"
    assert len(server.hits) == hits, "a second run must download nothing"
    assert leftovers(tmp_path) == ["demo.pt"]


def test_damaged_file_is_replaced(server, tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "demo.pt").write_bytes(b"damaged")
    result = download(tmp_path, manifest(tmp_path, f"http://127.0.0.1:{server.server_port}/good.pt"))
    assert result.returncode == 0 and "(checksum mismatch before)" in result.stdout
    assert (tmp_path / "ckpt" / "demo.pt").read_bytes() == PAYLOAD


def test_checksum_mismatch_is_rejected(server, tmp_path):
    result = download(tmp_path, manifest(tmp_path, f"http://127.0.0.1:{server.server_port}/good.pt", sha="0" * 64))
    assert result.returncode == 1
    assert "FAILED   demo" in result.stdout and "expected 000000000000" in result.stdout
    assert "ckpt/demo.pt" in result.stderr
    assert leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_nothing(server, tmp_path):
    result = download(tmp_path, manifest(tmp_path, f"http://127.0.0.1:{server.server_port}/cut.pt"))
    assert result.returncode == 1 and "FAILED" in result.stdout and "nothing replaced" in result.stdout
    assert leftovers(tmp_path) == []


def test_unreachable_url(tmp_path):
    result = download(tmp_path, manifest(tmp_path, "http://127.0.0.1:9/none.pt"))
    assert result.returncode == 1 and "downloading http://127.0.0.1:9/none.pt failed" in result.stdout
    assert leftovers(tmp_path) == []


def test_damaged_git_file_says_how_to_restore(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "demo.pt").write_bytes(b"damaged")
    result = download(tmp_path, manifest(tmp_path, None))
    assert result.returncode == 1
    assert "checksum mismatch and the manifest has no URL" in result.stdout
    assert "git checkout -- ckpt/demo.pt" in result.stdout
    assert (tmp_path / "ckpt" / "demo.pt").read_bytes() == b"damaged", "never delete what we cannot replace"


def test_bad_manifest(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    result = download(tmp_path, tmp_path / "m.json")
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
