"""Tables of the ANNEAL campaign store (SQLAlchemy 2) and the engine that holds them.

SQLite by default (a file; WAL journal, busy timeout and ``BEGIN IMMEDIATE``, so concurrent
writers queue instead of failing) or PostgreSQL by URL (``postgresql+psycopg://user@host/db``).
The human annotation app shares these tables; :mod:`rsir.active.store` is the API over them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

LABELS = (1, 0, -1)
ORACLE = "oracle"  # annotator name of the simulated oracle


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so every timestamp is stored and compared as UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class CampaignRow(Base):
    __tablename__ = "anneal_campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    strategy: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict] = mapped_column(JSON)
    n_items: Mapped[int] = mapped_column(Integer)
    current_round: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ItemRow(Base):
    """The campaign's items: pair indices point at ``idx``; the app shows ``path``."""

    __tablename__ = "anneal_items"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("anneal_campaigns.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(1024))
    path: Mapped[str] = mapped_column(String(2048), default="")


class QuestionRow(Base):
    """One pair asked in one round; its answer (label, annotator, time) is filled in place."""

    __tablename__ = "anneal_questions"
    __table_args__ = (
        UniqueConstraint("campaign_id", "item_a", "item_b", name="uq_question_pair"),
        CheckConstraint("item_a < item_b", name="ck_question_order"),
        CheckConstraint("label IS NULL OR label IN (-1, 0, 1)", name="ck_question_label"),
        Index("ix_question_round", "campaign_id", "round", "label"),
        Index("ix_question_annotator", "campaign_id", "annotator", "answered_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("anneal_campaigns.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)  # order within the round (most informative first)
    item_a: Mapped[int] = mapped_column(Integer)
    item_b: Mapped[int] = mapped_column(Integer)
    asked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    label: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    annotator: Mapped[str | None] = mapped_column(String(255), nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claim_expires: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RoundRow(Base):
    """A round: its questions were selected at ``selected_at``; ``trained_at`` once its head is stored."""

    __tablename__ = "anneal_rounds"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("anneal_campaigns.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_questions: Mapped[int] = mapped_column(Integer)
    selection: Mapped[dict] = mapped_column(JSON, default=dict)  # what the strategy fitted, timings
    selected_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    n_labelled: Mapped[int | None] = mapped_column(Integer, nullable=True)  # answered pairs trained on
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    trained_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class CheckpointRow(Base):
    """Head after training on the answers up to ``round``: a torch state dict (blob) and its config."""

    __tablename__ = "anneal_checkpoints"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("anneal_campaigns.id", ondelete="CASCADE"), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    head_config: Mapped[dict] = mapped_column(JSON)
    state: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # NULL once pruned
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AnnotatorRow(Base):
    """A person invited to a campaign: their name and the SHA-256 of their personal token (the token itself
    is shown once, by ``rsir anneal invite``, and never stored). ``name_key`` (case-folded) is unique per
    campaign, so ``Alice`` cannot pass for ``alice``."""

    __tablename__ = "anneal_annotators"
    __table_args__ = (UniqueConstraint("campaign_id", "name_key", name="uq_annotator_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("anneal_campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def database_url(db: str | Path) -> str:
    """A URL as given (``sqlite:///...``, ``postgresql+psycopg://...``), or a file path for SQLite."""
    text = str(db)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_connect(dbapi_conn, _record) -> None:
    # Let SQLAlchemy's "begin" hook issue BEGIN itself (pysqlite's implicit BEGIN is deferred and
    # upgrades to a write lock mid-transaction, which fails at once instead of waiting when busy).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor the writer them
    cur.execute("PRAGMA busy_timeout=30000")  # concurrent writers wait up to 30 s for the lock
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(db: str | Path) -> Engine:
    """Engine for a URL or an SQLite file path; creates the tables or migrates them to the current schema."""
    url = database_url(db)
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.endswith(":memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    else:
        engine = create_engine(url, pool_pre_ping=True)
    from rsir.active.migrate import upgrade

    upgrade(engine)  # versioned migrations (Alembic), not create_all: old campaign databases keep opening
    return engine
