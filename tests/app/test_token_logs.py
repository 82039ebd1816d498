"""Tokens never reach the logs: `rsir serve` and `rsir anneal serve`, run as a user runs them, log requests
that carried `?token=...` (the shared token, a personal invite) with the token masked."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotate_support import demo_embeddings, free_port, wait_for  # noqa: E402, F401  (fixture)

from rsir.app.auth import TokenMaskFilter, mask_tokens, uvicorn_log_config  # noqa: E402

SHARED = "shared-S3cret-shared-S3cret"
START_TIMEOUT = 240  # a cold interpreter imports torch; the index / features come from disk


def test_mask_tokens_in_any_position():
    assert mask_tokens("GET /?token=abc HTTP/1.1") == "GET /?token=*** HTTP/1.1"
    assert mask_tokens("/api/x?a=1&token=abc&b=2") == "/api/x?a=1&token=***&b=2"
    assert mask_tokens("/api/x?TOKEN=abc") == "/api/x?TOKEN=***"
    assert mask_tokens("/api/x?notoken=abc&mytoken=1") == "/api/x?notoken=abc&mytoken=1"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/?token=abc", "1.1", 200), None)  # fmt: skip
    assert TokenMaskFilter().filter(record) and record.getMessage() == '127.0.0.1:5 - "GET /?token=*** HTTP/1.1" 200'
    config = uvicorn_log_config()
    assert all("mask_tokens" in h["filters"] for h in config["handlers"].values())


def _run(cmd: list[str], log: Path, port: int, token: str):
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"X-RSIR-Token": token})

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {log.read_text()[-1500:]}")
        try:
            return http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, START_TIMEOUT, 0.25, "the server to start")
        yield httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    finally:
        http.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _logged(log: Path, *secrets: str) -> str:
    text = log.read_text(errors="replace")
    assert "token=***" in text, text[-2000:]  # the requests were logged...
    for secret in secrets:
        assert secret not in text  # ...without their tokens
    return text


def test_rsir_serve_masks_tokens_in_its_access_log(demo_index: Path, tmp_path: Path):
    port, log = free_port(), tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "rsir.cli.main", "serve", str(demo_index), "--port", str(port), "--token", SHARED,
           "--cache-dir", str(tmp_path / "thumbs")]  # fmt: skip
    for client in _run(cmd, log, port, SHARED):
        assert client.get(f"/?token={SHARED}").status_code == 200
        assert client.get("/api/info", params={"k": 1, "token": SHARED}).status_code == 200
        assert client.get("/api/info?token=wrong-guess-of-the-token").status_code == 401
    _logged(log, SHARED, "wrong-guess-of-the-token")


def test_rsir_anneal_serve_masks_shared_and_personal_tokens(demo_archive, demo_embeddings, tmp_path: Path):  # noqa: F811
    from typer.testing import CliRunner

    from rsir.cli.main import app

    port, log, db = free_port(), tmp_path / "annotate.log", str(tmp_path / "c.db")
    cmd = [sys.executable, "-m", "rsir.cli.main", "anneal", "serve", str(demo_archive.root), "--campaign", "logs",
           "--db", db, "--port", str(port), "--token", SHARED, "--initial", "8", "--per-round", "4", "--rounds", "1",
           "--steps", "2", "--cache-dir", str(tmp_path / "thumbs")]  # fmt: skip
    for client in _run(cmd, log, port, SHARED):
        invited = CliRunner().invoke(app, ["anneal", "invite", "logs", "alice", "--db", db, "--json"])
        assert invited.exit_code == 0, invited.output
        personal = invited.stdout.split('"token": "')[1].split('"')[0]
        assert client.get(f"/?token={personal}").status_code == 200
        assert client.get(f"/api/me?token={personal}").json()["annotator"] == "alice"
        assert client.get(f"/dashboard?token={SHARED}").status_code == 200
    _logged(log, SHARED, personal)
