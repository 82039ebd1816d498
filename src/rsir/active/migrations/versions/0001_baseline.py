"""Baseline: the campaign schema as `create_all` made it before migrations existed (rsir 0.1.0).

Databases written before migrations are stamped with this revision on open (their tables already match it);
new databases are created by it. Later changes are new revisions on top: never edit this one.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

CAMPAIGN_FK = "anneal_campaigns.id"


def upgrade() -> None:
    op.create_table(
        "anneal_campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("current_round", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "anneal_items",
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey(CAMPAIGN_FK, ondelete="CASCADE"), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True),
        sa.Column("item_id", sa.String(1024), nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
    )
    op.create_table(
        "anneal_questions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey(CAMPAIGN_FK, ondelete="CASCADE"), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item_a", sa.Integer(), nullable=False),
        sa.Column("item_b", sa.Integer(), nullable=False),
        sa.Column("asked_at", sa.DateTime(), nullable=False),
        sa.Column("label", sa.SmallInteger(), nullable=True),
        sa.Column("annotator", sa.String(255), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claim_expires", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("campaign_id", "item_a", "item_b", name="uq_question_pair"),
        sa.CheckConstraint("item_a < item_b", name="ck_question_order"),
        sa.CheckConstraint("label IS NULL OR label IN (-1, 0, 1)", name="ck_question_label"),
    )
    op.create_index("ix_question_round", "anneal_questions", ["campaign_id", "round", "label"])
    op.create_index("ix_question_annotator", "anneal_questions", ["campaign_id", "annotator", "answered_at"])
    op.create_table(
        "anneal_rounds",
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey(CAMPAIGN_FK, ondelete="CASCADE"), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("n_questions", sa.Integer(), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("selected_at", sa.DateTime(), nullable=False),
        sa.Column("n_labelled", sa.Integer(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("trained_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "anneal_checkpoints",
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey(CAMPAIGN_FK, ondelete="CASCADE"), primary_key=True),
        sa.Column("round", sa.Integer(), primary_key=True),
        sa.Column("head_config", sa.JSON(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("anneal_checkpoints", "anneal_rounds", "anneal_questions", "anneal_items", "anneal_campaigns"):
        op.drop_table(table)
