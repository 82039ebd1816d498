"""Shared pieces of the annotation-app tests: the demo archive copied to a temp root with its cached
features, campaigns on SQLite or PostgreSQL, a real uvicorn server, the throwaway PostgreSQL cluster.

Imported by path from the test modules (``--import-mode=importlib`` leaves sys.path alone); the
fixtures defined here are registered in each test module that imports them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PG_SCRIPT = REPO / "scripts" / "pg-test.sh"
SMALL = {"initial": 8, "per_round": 4, "rounds": 1, "steps": 2}  # two short rounds, quick training
_pg: dict = {}


# ---------------------------------------------------------------- PostgreSQL


def _start_cluster() -> tuple[str | None, str]:
    """(url, '') from RSIR_TEST_PG_URL or a cluster started by scripts/pg-test.sh; (None, why) otherwise."""
    if os.environ.get("RSIR_TEST_PG_URL"):
        return os.environ["RSIR_TEST_PG_URL"], ""
    if not shutil.which("bash"):
        return None, "no bash to run scripts/pg-test.sh"
    try:
        out = subprocess.run([str(PG_SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"scripts/pg-test.sh start failed: {err}"
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"scripts/pg-test.sh start failed: {tail[0]}"
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines() if "=" in line
    )  # fmt: skip
    folder = env.get("RSIR_TEST_PG_DIR")
    if folder:
        atexit.register(subprocess.run, [str(PG_SCRIPT), "stop", folder], capture_output=True, timeout=60)
    return env.get("RSIR_TEST_PG_URL"), ""


def postgres_url() -> str:
    """A PostgreSQL URL for the tests (one cluster per test session), or skip with the reason."""
    if "url" not in _pg:
        _pg["url"], _pg["why"] = _start_cluster()
    if not _pg["url"]:
        pytest.skip(f"no PostgreSQL for the tests: set RSIR_TEST_PG_URL, or install the Debian package "
                    f"postgresql ({_pg['why']})")  # fmt: skip
    return _pg["url"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path: Path) -> str:
    """Each test's campaign database: a fresh SQLite file, or the session's PostgreSQL database (the
    tests use unique campaign names there)."""
    return str(tmp_path / "campaign.db") if request.param == "sqlite" else postgres_url()


def unique(name: str = "c") -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- archive and campaigns


@pytest.fixture(scope="session")
def demo_embeddings(demo_archive):
    """Encoder features of the demo archive (embedded once per session, shared with the demo index)."""
    from rsir.cbir.space import Space

    return Space.load().embed(demo_archive, progress=False)


@pytest.fixture(scope="session")
def archive_copy(tmp_path_factory: pytest.TempPathFactory):
    """The demo archive copied to a temp root, so tests may put files (and symlinks) next to it."""
    from rsir.data.archives import open_archive
    from rsir.data.demo import demo_archive_path

    root = tmp_path_factory.mktemp("annotate-archive") / "ucmerced"
    shutil.copytree(demo_archive_path(), root)
    return open_archive(root)


def open_campaign(archive, embeddings, db: str, name: str | None = None, claim_seconds: float = 300, **options):
    from rsir.app.annotate.campaign import AnnotationCampaign, ServeOptions

    opts = ServeOptions(**{**SMALL, **options})
    return AnnotationCampaign.open(archive, db, name or unique(), opts, embeddings=embeddings,
                                   claim_seconds=claim_seconds)  # fmt: skip


def wait_for(predicate, timeout: float = 60, every: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """A real uvicorn server (the one `rsir anneal serve` runs) in a thread, stopped on exit."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), 30, 0.05, "uvicorn to start")
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
