"""The campaign database is versioned (Alembic): a database written before migrations existed still opens,
answers intact, and a fresh one is exactly what the models describe. SQLite, and PostgreSQL with
RSIR_TEST_PG_URL (in a schema of its own)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa

from rsir.active.migrate import current_revision, head_revision
from rsir.active.store import Store


def _old_schema() -> sa.MetaData:
    """The tables exactly as rsir 0.1.0 made them with `create_all` (frozen here: never follow db.py)."""
    md = sa.MetaData()

    def col(name: str, kind, *args, null: bool = False, **kw) -> sa.Column:
        return sa.Column(name, kind, *args, nullable=null, **kw)

    def fk(pk: bool = True) -> sa.Column:
        return col("campaign_id", sa.Integer, sa.ForeignKey("anneal_campaigns.id", ondelete="CASCADE"), primary_key=pk)

    sa.Table("anneal_campaigns", md, col("id", sa.Integer, primary_key=True), col("name", sa.String(255), unique=True),
             col("strategy", sa.String(64)), col("seed", sa.Integer), col("settings", sa.JSON),
             col("n_items", sa.Integer), col("current_round", sa.Integer), col("status", sa.String(16)),
             col("created_at", sa.DateTime))  # fmt: skip
    sa.Table("anneal_items", md, fk(), col("idx", sa.Integer, primary_key=True), col("item_id", sa.String(1024)),
             col("path", sa.String(2048)))  # fmt: skip
    sa.Table("anneal_questions", md, col("id", sa.Integer, primary_key=True), fk(pk=False),
             col("round", sa.Integer), col("position", sa.Integer), col("item_a", sa.Integer),
             col("item_b", sa.Integer), col("asked_at", sa.DateTime), col("label", sa.SmallInteger, null=True),
             col("annotator", sa.String(255), null=True), col("answered_at", sa.DateTime, null=True),
             col("claimed_by", sa.String(255), null=True), col("claim_expires", sa.DateTime, null=True),
             sa.UniqueConstraint("campaign_id", "item_a", "item_b", name="uq_question_pair"),
             sa.CheckConstraint("item_a < item_b", name="ck_question_order"),
             sa.CheckConstraint("label IS NULL OR label IN (-1, 0, 1)", name="ck_question_label"),
             sa.Index("ix_question_round", "campaign_id", "round", "label"),
             sa.Index("ix_question_annotator", "campaign_id", "annotator", "answered_at"))  # fmt: skip
    sa.Table("anneal_rounds", md, fk(), col("number", sa.Integer, primary_key=True), col("n_questions", sa.Integer),
             col("selection", sa.JSON), col("selected_at", sa.DateTime), col("n_labelled", sa.Integer, null=True),
             col("metrics", sa.JSON, null=True), col("trained_at", sa.DateTime, null=True))  # fmt: skip
    sa.Table("anneal_checkpoints", md, fk(), col("round", sa.Integer, primary_key=True), col("head_config", sa.JSON),
             col("state", sa.LargeBinary, null=True), col("created_at", sa.DateTime))  # fmt: skip
    return md


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'campaign.db'}"
        return
    base = os.environ.get("RSIR_TEST_PG_URL")
    if not base:
        pytest.skip("set RSIR_TEST_PG_URL=postgresql+psycopg://... to test the PostgreSQL store")
    schema = f"rsir_mig_{uuid.uuid4().hex[:8]}"  # a schema of its own: the database is shared between tests
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _write_old_database(url: str) -> None:
    """A campaign with one round, two answers and a checkpoint, written with the old schema only."""
    engine, md, now = sa.create_engine(url), _old_schema(), datetime(2026, 11, 1, 12, 0)
    md.create_all(engine)
    t = md.tables
    with engine.begin() as conn:
        conn.execute(t["anneal_campaigns"].insert(), [dict(id=1, name="weeks-of-work", strategy="anneal-mgue", seed=0,
                     settings={"initial": 2}, n_items=4, current_round=0, status="open", created_at=now)])  # fmt: skip
        conn.execute(t["anneal_items"].insert(), [dict(campaign_id=1, idx=k, item_id=f"i{k}", path=f"/a/i{k}.jpg")
                                                  for k in range(4)])  # fmt: skip
        conn.execute(t["anneal_rounds"].insert(), [dict(campaign_id=1, number=0, n_questions=3, selection={},
                                                        selected_at=now)])  # fmt: skip
        rows = [(0, 1, 1, "ann"), (1, 2, 0, "bob"), (2, 3, None, None)]
        conn.execute(t["anneal_questions"].insert(), [
            dict(campaign_id=1, round=0, position=p, item_a=a, item_b=b, asked_at=now, label=y, annotator=who,
                 answered_at=now if y is not None else None) for p, (a, b, y, who) in enumerate(rows)])  # fmt: skip
    engine.dispose()


def test_a_database_from_before_migrations_opens_with_its_answers(url) -> None:
    _write_old_database(url)
    store = Store(url)
    try:
        assert current_revision(store.engine) == head_revision()
        cid = store.campaign_by_name("weeks-of-work").id
        i, j, y = store.answered_pairs(cid)
        assert list(zip(i.tolist(), j.tolist(), y.tolist(), strict=True)) == [(0, 1, 1), (1, 2, 0)]
        qids, a, b = store.pending(cid)
        assert (a.tolist(), b.tolist()) == ([2], [3])
        store.record_answer(int(qids[0]), 1, "carol")  # and it keeps working
        assert store.round_complete(cid)
    finally:
        store.dispose()
    reopened = Store(url)  # a second open finds it current and changes nothing
    assert current_revision(reopened.engine) == head_revision()
    assert reopened.answered_pairs(cid)[2].tolist() == [1, 0, 1]
    reopened.dispose()


def test_a_new_database_is_exactly_what_the_models_describe(url) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from rsir.active.db import Base

    store = Store(url)
    try:
        assert current_revision(store.engine) == head_revision()
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"the models changed without a migration (add a revision): {diff}"
    finally:
        store.dispose()


def test_processes_opening_a_new_database_at_once_migrate_it_once(url) -> None:
    import threading

    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Store(url).dispose()
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = Store(url)
    assert current_revision(store.engine) == head_revision()
    store.dispose()
