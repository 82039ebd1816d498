"""Alembic migrations of the campaign database (see :mod:`rsir.active.migrate`; revisions in ``versions/``)."""
