"""Invited annotators of a campaign: a personal token per person, so answers and undo are bound to who
holds the token instead of to a name anyone may type.

``rsir anneal invite CAMPAIGN NAME`` makes a token (shown once) and stores only its SHA-256 in the
campaign database (table ``anneal_annotators``). The tokens are 192 random bits, so a plain hash is
enough: there is nothing to guess from it, and a look-up by hash needs no comparison in Python.
Inviting a name again replaces its token (the old link stops working).
"""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select

from rsir.active.db import ORACLE, AnnotatorRow
from rsir.active.store import Store

NAME_PATTERN = r"^[\w][\w .@+-]*$"
MAX_NAME = 64


def name_key(name: str) -> str:
    """The form names are compared in: ``Alice``, ``alice `` and ``ALICE`` are one person."""
    return name.strip().casefold()


def check_name(name: str) -> str:
    """``name`` stripped, or ValueError: letters, digits, spaces and ``. @ + -``, at most 64, not the oracle's."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or not re.match(NAME_PATTERN, name):
        raise ValueError(f"annotator name {name!r}: use 1-{MAX_NAME} letters, digits, spaces and . @ + -")
    if name_key(name) == name_key(ORACLE):
        raise ValueError(f"the annotator name {ORACLE!r} is reserved for the simulated oracle")
    return name


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(store: Store, campaign_id: int, name: str) -> str:
    """A new personal token for ``name`` on the campaign (replacing any earlier one of that name)."""
    name = check_name(name)
    token = secrets.token_urlsafe(24)
    key, digest = name_key(name), token_hash(token)
    with store.session() as s:
        row = s.scalar(
            select(AnnotatorRow).where((AnnotatorRow.campaign_id == campaign_id) & (AnnotatorRow.name_key == key))
        )
        if row is None:
            s.add(AnnotatorRow(campaign_id=campaign_id, name=name, name_key=key, token_hash=digest))
        else:
            row.name, row.token_hash = name, digest
    return token


def annotator_of(store: Store, campaign_id: int, token: str) -> str | None:
    """The invited name whose token this is, or None."""
    with store.session() as s:
        return s.scalar(
            select(AnnotatorRow.name).where(
                (AnnotatorRow.campaign_id == campaign_id) & (AnnotatorRow.token_hash == token_hash(token))
            )
        )


def invited_name(store: Store, campaign_id: int, name: str) -> str | None:
    """The invited annotator ``name`` refers to (compared case-insensitively), or None."""
    with store.session() as s:
        return s.scalar(
            select(AnnotatorRow.name).where(
                (AnnotatorRow.campaign_id == campaign_id) & (AnnotatorRow.name_key == name_key(name))
            )
        )


def invited_names(store: Store, campaign_id: int) -> list[str]:
    with store.session() as s:
        q = select(AnnotatorRow.name).where(AnnotatorRow.campaign_id == campaign_id).order_by(AnnotatorRow.id)
        return list(s.scalars(q).all())
