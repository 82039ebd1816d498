"""Nothing acknowledged is lost: `rsir anneal serve` killed with SIGKILL mid-round (and again right after a
round's last answer, while the next round is prepared) restarts with every acknowledged answer kept and
the campaign where it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotate_support import (  # noqa: E402
    db_url,  # noqa: F401  (fixture)
    demo_embeddings,  # noqa: F401  (fixture)
    free_port,
    unique,
    wait_for,
)

from rsir.active.db import CampaignRow, QuestionRow  # noqa: E402
from rsir.active.store import Store  # noqa: E402
from rsir.data.demo import demo_archive_path  # noqa: E402

START_TIMEOUT = 240  # a cold interpreter imports torch and loads the encoder; features come from the cache


class Served:
    """`rsir anneal serve` in a subprocess on a free port."""

    def __init__(self, db: str, name: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "rsir.cli.main", "anneal", "serve", str(demo_archive_path()), "--campaign", name,
               "--db", db, "--port", str(self.port), "--initial", "8", "--per-round", "4", "--rounds", "1",
               "--steps", "2", "--log-level", "warning"]  # fmt: skip
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
        self.http = httpx.Client(base_url=self.url, timeout=60)
        wait_for(self._healthy, START_TIMEOUT, 0.25, f"the server to start (log: {self.tail()})")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited with {self.proc.returncode}: {self.tail()}")
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def post(self, path: str, body: dict) -> dict:
        r = self.http.post(path, json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def pair(self, who: str, round_: int = 0) -> dict:
        def ready():
            s = self.post("/api/next", {"annotator": who})
            return s["question"] if s["question"] and s["question"]["round"] == round_ else None

        return wait_for(ready, 120, 0.2, f"a round-{round_} pair for {who} (log: {self.tail()})")

    def kill(self) -> None:
        self.http.close()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _stored(db: str, name: str) -> tuple[int, dict[int, tuple[int, str]]]:
    """The campaign's current round and its answers {question id: (label, annotator)}, read from the database."""
    store = Store(db)
    try:
        with store.session() as s:
            camp = s.scalar(select(CampaignRow).where(CampaignRow.name == name))
            rows = s.execute(
                select(QuestionRow.id, QuestionRow.label, QuestionRow.annotator, QuestionRow.answered_at).where(
                    (QuestionRow.campaign_id == camp.id) & QuestionRow.label.is_not(None)
                )
            ).all()
        assert all(r.answered_at is not None for r in rows)
        return camp.current_round, {r.id: (r.label, r.annotator) for r in rows}
    finally:
        store.dispose()


def test_sigkill_mid_round_then_resume_keeps_every_acknowledged_answer(db_url, demo_archive, demo_embeddings, tmp_path):  # noqa: F811
    name, log = unique("resume"), tmp_path / "server.log"
    value = {"similar": 1, "dissimilar": 0, "skip": -1}
    acknowledged: dict[int, tuple[int, str]] = {}

    def answer(server: Served, who: str, label: str, round_: int = 0) -> None:
        q = server.pair(who, round_)
        r = server.post("/api/answer", {"annotator": who, "question_id": q["id"], "label": label})
        assert r["stored"]
        acknowledged[q["id"]] = (value[label], who)

    server = Served(db_url, name, log)
    try:
        for who, label in [("alice", "similar"), ("bob", "dissimilar"), ("alice", "skip"), ("bob", "similar"),
                           ("alice", "dissimilar")]:  # fmt: skip
            answer(server, who, label)
        held = server.pair("carol")["id"]  # shown to carol, not answered yet
    finally:
        server.kill()
    assert _stored(db_url, name) == (0, acknowledged)

    server = Served(db_url, name, log)
    try:
        state = server.http.get("/api/state").json()
        assert (
            state["phase"] == "ready"
            and state["progress"] | {"round": 0, "answered": 5, "total": 8} == state["progress"]
        )
        assert server.pair("carol")["id"] == held  # the round resumes where it was, claims included
        for label in ("similar", "skip", "dissimilar"):
            answer(server, "carol", label)  # the last one completes the round: training starts
    finally:
        server.kill()  # most likely while the next round is being prepared
    assert _stored(db_url, name)[1] == acknowledged

    # a third start, in-process (same start-up path minus uvicorn): the round is trained, the next one comes
    from rsir.app.annotate.campaign import AnnotationCampaign, ServeOptions

    campaign = AnnotationCampaign.open(demo_archive, db_url, name, ServeOptions(), embeddings=demo_embeddings)
    try:
        campaign.start()
        wait_for(lambda: campaign.campaign.current_round == 1 and not campaign.busy, 120, 0.1, "the next round")
        assert [(h.round, h.n_labelled) for h in campaign.campaign.history()] == [(0, 6)]  # 2 of 8 were skips
    finally:
        campaign.stop(timeout=60)
        campaign.store.dispose()
    assert _stored(db_url, name) == (1, acknowledged)


def test_binding_beyond_loopback_without_a_token_exits_at_once(tmp_path):
    from typer.testing import CliRunner

    from rsir.cli.main import app

    env = {k: v for k, v in os.environ.items() if k != "RSIR_TOKEN"}
    args = ["anneal", "serve", str(demo_archive_path()), "--campaign", "x", "--db", str(tmp_path / "c.db")]
    result = CliRunner().invoke(app, [*args, "--host", "0.0.0.0"], env=env)
    assert result.exit_code == 2 and "--token" in result.output and "RSIR_TOKEN" in result.output
    assert not (tmp_path / "c.db").exists()  # refused before touching anything


def test_resuming_with_other_options_exits_with_a_clear_message(demo_archive, demo_embeddings, tmp_path):  # noqa: F811
    from typer.testing import CliRunner

    from rsir.app.annotate.campaign import AnnotationCampaign, ServeOptions
    from rsir.cli.main import app

    db = str(tmp_path / "c.db")
    AnnotationCampaign.open(demo_archive, db, "mine", ServeOptions(per_round=4), embeddings=demo_embeddings)
    args = ["anneal", "serve", str(demo_archive_path()), "--campaign", "mine", "--db", db, "--per-round", "5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--per-round 5 (campaign has 4)" in result.output and "Traceback" not in result.output


def test_serve_defaults_to_the_default_strategy_stored_resolved(demo_archive):  # noqa: F811
    from rsir.active.store import CampaignMismatch
    from rsir.active.strategies import resolve
    from rsir.api_campaign import CampaignOptions as ServeOptions
    from rsir.api_campaign import _settings

    new = _settings(None, ServeOptions(), demo_archive, "efficientnet-lite0", "rsir anneal serve")
    assert new.strategy == resolve("default") != "default"  # the name it selects, not "default"
    assert _settings(new, ServeOptions(strategy="default"), demo_archive, "x", "rsir anneal serve") is new  # agrees
    with pytest.raises(CampaignMismatch, match="--strategy random"):
        _settings(new, ServeOptions(strategy="random"), demo_archive, "x", "rsir anneal serve")


def test_serve_closure_option_reaches_the_learner_and_must_agree_on_resume(demo_archive):  # noqa: F811
    from rsir.active.store import CampaignMismatch
    from rsir.api_campaign import CampaignOptions as ServeOptions
    from rsir.api_campaign import _settings

    off = _settings(None, ServeOptions(closure=0.0), demo_archive, "x", "rsir anneal serve")
    assert off.train.closure == 0.0
    assert (
        _settings(None, ServeOptions(), demo_archive, "x", "rsir anneal serve").train.closure > 0
    )  # the learner's default
    with pytest.raises(CampaignMismatch, match="--closure 1.0"):
        _settings(off, ServeOptions(closure=1.0), demo_archive, "x", "rsir anneal serve")


def test_serve_groups_option_reaches_the_learner_and_must_agree_on_resume(demo_archive):  # noqa: F811
    from rsir.active.store import CampaignMismatch
    from rsir.api_campaign import CampaignOptions as ServeOptions
    from rsir.api_campaign import _settings

    grouped = _settings(None, ServeOptions(groups=0.25), demo_archive, "x", "rsir anneal serve")
    assert grouped.train.groups == 0.25
    assert _settings(grouped, ServeOptions(groups=0.25), demo_archive, "x", "rsir anneal serve") is grouped
    with pytest.raises(CampaignMismatch, match="--groups 1.0"):
        _settings(grouped, ServeOptions(groups=1.0), demo_archive, "x", "rsir anneal serve")
