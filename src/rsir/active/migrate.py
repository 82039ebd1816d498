"""Versioned schema of the campaign database: Alembic migrations, applied when a store opens it.

Campaigns hold weeks of expert answers, so a new rsir must open every database an older one wrote. Each
schema change is a revision in ``rsir/active/migrations/versions/``; :func:`upgrade` brings a database to
the newest one in one transaction, under a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory
lock), so processes opening one database at once migrate it once. Databases written before migrations
existed (tables made by ``create_all``, no ``alembic_version``) hold the baseline schema: they are stamped
with revision ``0001`` and upgraded from there.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text

BASELINE = "0001"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK = 0x7273_6972  # "rsir": one advisory lock key for migrating campaign databases


def _config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Create or migrate the campaign tables to the newest revision (idempotent; safe from many processes)."""
    from alembic import command

    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE (see db.make_engine) holds the write lock
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        tables = set(inspect(conn).get_table_names())
        cfg = _config(conn)
        if "anneal_campaigns" in tables and "alembic_version" not in tables:
            command.stamp(cfg, BASELINE)  # written by create_all before migrations existed
        command.upgrade(cfg, "head")
