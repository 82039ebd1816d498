"""Campaign store round trips on SQLite (and PostgreSQL when RSIR_TEST_PG_URL is set)."""

from __future__ import annotations

import os
import threading
import uuid

import numpy as np
import pytest

from rsir.active.store import CampaignMismatch, Store

IDS = [f"item{k}" for k in range(10)]
PATHS = [f"/archive/item{k}.jpg" for k in range(10)]


def _postgres_url() -> str:
    url = os.environ.get("RSIR_TEST_PG_URL")
    if not url:
        pytest.skip("set RSIR_TEST_PG_URL=postgresql+psycopg://... to test the PostgreSQL store")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    url = str(tmp_path / "campaign.db") if request.param == "sqlite" else _postgres_url()
    st = Store(url)
    yield st
    st.dispose()


def _campaign(store: Store, pairs=((0, 1), (2, 5), (7, 3)), name: str | None = None) -> int:
    """A campaign (unique name: the PostgreSQL database is shared between tests) with one open round."""
    cid = store.create_or_resume_campaign(name or f"c-{uuid.uuid4().hex[:8]}", "mgue", 0, {"initial": 3}, IDS, PATHS)
    i, j = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    with store.session() as s:
        store.add_round(s, cid, 0, i, j, {"strategy": "random"})
    return cid


def test_round_trip_questions_answers_and_checkpoint(store):
    cid = _campaign(store)
    assert store.item_ids(cid) == IDS
    assert not store.round_complete(cid)
    qids, a, b = store.pending(cid)
    assert a.tolist() == [0, 2, 3] and b.tolist() == [1, 5, 7]  # stored canonical, in asked order
    q = store.record_answer(int(qids[0]), 1, "ann")
    assert (q.label, q.annotator, q.id_a, q.path_b) == (1, "ann", "item0", "/archive/item1.jpg")
    store.record_answers(qids[1:], [0, -1])
    assert store.round_complete(cid)
    i, j, y = store.answered_pairs(cid)
    assert list(zip(i.tolist(), j.tolist(), y.tolist(), strict=True)) == [(0, 1, 1), (2, 5, 0), (3, 7, -1)]
    assert y.dtype == np.int8
    with store.session() as s:
        store.finish_round(s, cid, 0, 2, {"map@20": 0.5}, {"in_dim": 4}, b"weights")
        store.add_round(s, cid, 1, np.array([4]), np.array([6]), {})
    ck = store.latest_checkpoint(cid)
    assert (ck.round, ck.state, ck.head_config) == (0, b"weights", {"in_dim": 4})
    rounds = store.rounds(cid)
    assert [(r.number, r.n_labelled, r.metrics) for r in rounds] == [(0, 2, {"map@20": 0.5}), (1, None, None)]
    assert store.campaign(cid).current_round == 1 and not store.round_complete(cid)


def test_resume_checks_settings_and_items(store):
    cid = _campaign(store, name=f"same-{uuid.uuid4().hex[:8]}")
    name = store.campaign(cid).name
    assert store.create_or_resume_campaign(name, "mgue", 0, {"initial": 3}, IDS) == cid
    with pytest.raises(CampaignMismatch, match="initial"):
        store.create_or_resume_campaign(name, "mgue", 0, {"initial": 4}, IDS)
    with pytest.raises(CampaignMismatch, match="items"):
        store.create_or_resume_campaign(name, "mgue", 0, {"initial": 3}, IDS[:-1])


def test_duplicate_pair_is_rejected_by_the_database(store):
    from sqlalchemy.exc import IntegrityError

    cid = _campaign(store)
    with pytest.raises(IntegrityError), store.session() as s:
        store.add_round(s, cid, 1, np.array([1]), np.array([0]), {})  # (0, 1) again, reversed
    assert store.campaign(cid).current_round == 0  # the failed round left nothing behind


def test_answers_are_idempotent_and_first_answer_wins(store):
    cid = _campaign(store)
    qid = int(store.pending(cid)[0][0])
    first = store.record_answer(qid, 0, "ann")
    again = store.record_answer(qid, 0, "ann")
    assert (first.label, again.label) == (0, 0) and first.annotator == again.annotator == "ann"
    other = store.record_answer(qid, 1, "bob")  # someone else cannot overwrite an answer
    assert (other.label, other.annotator) == (0, "ann")
    fixed = store.record_answer(qid, 1, "ann")  # the author may correct it while the round is open
    assert fixed.label == 1
    store.record_answers([qid], [0])  # bulk answers touch pending questions only
    assert store.answered_pairs(cid)[2].tolist() == [1]
    with pytest.raises(ValueError, match="label"):
        store.record_answer(qid, 2, "ann")


def test_claims_give_different_annotators_different_pairs(store):
    cid = _campaign(store)
    a = store.next_pending_question(cid, "ann")
    b = store.next_pending_question(cid, "bob")
    assert a.id != b.id
    assert store.next_pending_question(cid, "ann").id == a.id  # a reload shows the same pair
    c = store.next_pending_question(cid, "cat")
    assert c.id not in (a.id, b.id)
    assert store.next_pending_question(cid, "dan") is None  # every pair is claimed


def test_expired_claims_are_released(store):
    cid = _campaign(store, pairs=((0, 1),))
    a = store.next_pending_question(cid, "ann", claim_seconds=-1)
    b = store.next_pending_question(cid, "bob")
    assert a.id == b.id


def test_concurrent_claims_from_threads_never_share_a_pair(store):
    cid = _campaign(store, pairs=[(k, k + 1) for k in range(0, 8)])
    got: dict[str, int | None] = {}

    def claim(name: str) -> None:
        q = store.next_pending_question(cid, name)
        got[name] = q.id if q else None

    threads = [threading.Thread(target=claim, args=(f"a{k}",)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [v for v in got.values() if v is not None]
    assert len(ids) == 8 and len(set(ids)) == 8


def test_an_unknown_campaign_or_question_is_a_key_error_naming_it(store):
    calls = [lambda: store.campaign(999), lambda: store.pending(999), lambda: store.round_complete(999),
             lambda: store.next_pending_question(999, "ann"), lambda: store.undo_last(999, "ann")]  # fmt: skip
    for call in calls:
        with pytest.raises(KeyError, match="no campaign 999"):
            call()
    with pytest.raises(KeyError, match="no question 12345"):
        store.record_answer(12345, 1, "ann")


def test_undo_last_reopens_the_annotators_latest_answer(store):
    cid = _campaign(store)
    qids = [int(q) for q in store.pending(cid)[0]]
    store.record_answer(qids[0], 1, "ann")
    store.record_answer(qids[1], 0, "ann")
    store.record_answer(qids[2], 0, "bob")
    undone = store.undo_last(cid, "ann")
    assert undone.id == qids[1] and undone.label is None
    assert store.next_pending_question(cid, "ann").id == qids[1]  # shown again to its author
    assert store.next_pending_question(cid, "bob") is None  # and not to someone else
    assert store.undo_last(cid, "ann").id == qids[0]
    assert store.undo_last(cid, "ann") is None
    assert store.undo_last(cid, "nobody") is None


def test_answers_to_a_closed_round_are_refused(store):
    cid = _campaign(store, pairs=((0, 1),))
    qid = int(store.pending(cid)[0][0])
    store.record_answer(qid, 1, "ann")
    with store.session() as s:
        store.finish_round(s, cid, 0, 1, {}, {}, b"w")
        store.add_round(s, cid, 1, np.array([2]), np.array([3]), {})
    with pytest.raises(ValueError, match="closed round"):
        store.record_answer(qid, 0, "ann")
    assert store.undo_last(cid, "ann") is None  # undo cannot reach into a trained round


def test_old_checkpoint_blobs_are_pruned(store):
    cid = _campaign(store, pairs=((0, 1),))
    for r in range(3):
        with store.session() as s:
            store.finish_round(s, cid, r, 1, {}, {"r": r}, bytes([r]), keep_checkpoints=1)
            store.add_round(s, cid, r + 1, np.array([r + 2]), np.array([r + 3]), {})
    assert store.latest_checkpoint(cid).state == bytes([2])
    with store.session() as s:
        from sqlalchemy import select

        from rsir.active.db import CheckpointRow

        kept = s.execute(select(CheckpointRow.round, CheckpointRow.state).where(CheckpointRow.campaign_id == cid))
        assert sorted((r, st is not None) for r, st in kept) == [(0, False), (1, False), (2, True)]


def test_sqlite_file_uses_wal(tmp_path):
    st = Store(tmp_path / "x.db")
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
