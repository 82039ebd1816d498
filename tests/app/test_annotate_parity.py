"""One campaign path: the same steps through the Python API (rsir.open_campaign, one pair at a time or a
callback per round) and through the annotation app's HTTP API store the same answers and train the same rounds.

Real SQLite files, the real app in its test client (background rounds included), the demo archive.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotate_support import (  # noqa: E402
    SMALL,
    archive_copy,  # noqa: F401  (fixture)
    demo_embeddings,  # noqa: F401  (fixture)
    wait_for,
)

import rsir  # noqa: E402
import rsir.api_campaign  # noqa: E402
from rsir.active.db import QuestionRow  # noqa: E402

WHO = "alice"
LABEL_NAME = {1: "similar", 0: "dissimilar", -1: "skip"}


def _label(labels: dict[str, tuple], a: str, b: str) -> int:
    """A person's answer, stood in for by the scene folders; some pairs skipped."""
    if a.endswith("1") or b.endswith("1"):
        return -1
    return int(labels[a] == labels[b])


def _stored(campaign) -> list[tuple]:
    with campaign.store.session() as s:
        rows = s.scalars(select(QuestionRow).where(QuestionRow.campaign_id == campaign.id)).all()
        return sorted((r.round, r.item_a, r.item_b, r.label, r.annotator) for r in rows)


def _rounds(campaign) -> list[tuple]:
    return [(r.round, r.n_labelled, r.n_similar, r.map_at_k) for r in campaign.history()]


def _by_python(archive, embeddings, db: Path, labels: dict) -> rsir.Campaign:
    c = rsir.open_campaign(archive, db, "parity", **SMALL, embeddings=embeddings)
    c.start()
    first = True
    while not c.done:
        assert c.due() == ""
        while (q := c.next_question(WHO)) is not None:
            result = c.answer(WHO, q.id, _label(labels, q.id_a, q.id_b))
            assert result.stored
            if first:  # take the first answer back: the pair comes again and is answered again
                undone = c.undo(WHO)
                assert undone is not None and undone.question.id == q.id and c.next_question(WHO).id == q.id
                first = False
        assert c.due() == "train"
        c.advance()
    return c


def _by_http(archive, embeddings, db: Path, labels: dict, tmp_path: Path):
    from rsir.app.annotate import create_annotate_app
    from rsir.app.annotate.campaign import AnnotationCampaign, ServeOptions

    served = AnnotationCampaign.open(archive, db, "parity", ServeOptions(**SMALL), embeddings=embeddings)
    first = True
    with TestClient(create_annotate_app(served, cache_dir=tmp_path / "thumbs")) as client:
        while True:
            state = wait_for(lambda: (s := client.post("/api/next", json={"annotator": WHO}).json())["phase"]
                             in ("ready", "done") and s, 120, 0.05, "a pair or the end")  # fmt: skip
            if state["phase"] == "done":
                break
            q = state["question"]
            ids = served.campaign.items
            label = LABEL_NAME[_label(labels, ids[q["a"]["idx"]].id, ids[q["b"]["idx"]].id)]
            body = {"annotator": WHO, "question_id": q["id"], "label": label}
            assert client.post("/api/answer", json=body).json()["stored"]
            if first:
                assert client.post("/api/undo", json={"annotator": WHO}).json()["question"]["id"] == q["id"]
                first = False
        served.stop(timeout=60)
    return served.campaign


def test_python_and_http_store_the_same_answers_and_rounds(archive_copy, demo_embeddings, tmp_path):  # noqa: F811
    labels = {it.id: it.labels for it in archive_copy.items}
    by_python = _by_python(archive_copy, demo_embeddings, tmp_path / "python.db", labels)
    by_http = _by_http(archive_copy, demo_embeddings, tmp_path / "http.db", labels, tmp_path)
    by_callback = rsir.open_campaign(archive_copy, tmp_path / "callback.db", "parity", **SMALL,
                                     embeddings=demo_embeddings, annotator=WHO)  # fmt: skip
    by_callback.run(lambda a, b: {1: True, 0: False, -1: None}[_label(labels, a.id, b.id)])
    try:
        stored = _stored(by_python)
        assert len(stored) == SMALL["initial"] + SMALL["per_round"] and all(r[3] is not None for r in stored)
        assert {r[3] for r in stored} >= {0, -1}  # dissimilar and skipped answers both went through
        assert _stored(by_http) == stored and _stored(by_callback) == stored
        rounds = _rounds(by_python)
        assert [r[0] for r in rounds] == [0, 1] and all(r[3] is not None for r in rounds)
        assert _rounds(by_http) == rounds and _rounds(by_callback) == rounds
        assert by_python.done and by_http.done and by_callback.done
        # the same settings, but for who created the campaign
        same = lambda c: {**c.settings.to_dict(), "extra": {**c.settings.extra, "app": ""}}  # noqa: E731
        assert same(by_python) == same(by_http) == same(by_callback)
    finally:
        for c in (by_python, by_http, by_callback):
            c.close()


def test_a_served_campaign_is_resumed_from_a_notebook_and_back(archive_copy, demo_embeddings, tmp_path):  # noqa: F811
    """Options left out keep the stored ones, whoever created the campaign (a notebook used to refuse a
    campaign `rsir anneal serve` had created: its settings differed in who created it)."""
    from rsir.app.annotate.campaign import AnnotationCampaign, ServeOptions

    db = tmp_path / "c.db"
    served = AnnotationCampaign.open(archive_copy, db, "both", ServeOptions(**SMALL), embeddings=demo_embeddings)
    notebook = rsir.open_campaign(archive_copy, db, "both", embeddings=demo_embeddings, annotator=WHO)
    assert notebook.id == served.id and notebook.settings == served.campaign.settings
    assert notebook.settings.per_round == SMALL["per_round"] and notebook.settings.extra["app"] == "rsir anneal serve"
    with pytest.raises(rsir.api_campaign.CampaignMismatch, match="--rounds 3 .campaign has 1"):
        rsir.open_campaign(archive_copy, db, "both", embeddings=demo_embeddings, rounds=3)
    notebook.answer_round(lambda a, b: a.labels == b.labels)
    again = AnnotationCampaign.open(archive_copy, db, "both", embeddings=demo_embeddings)
    assert again.campaign.current_round == 1 and [r.round for r in again.campaign.history()] == [0]
    assert again.image_path(0).is_file()  # stored paths resolve under the archive root for the app
    for c in (served.campaign, notebook, again.campaign):
        c.close()
