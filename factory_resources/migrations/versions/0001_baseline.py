"""Baseline: every table the project had when migrations began, as create_all made them.

A database made by create_all before migrations holds these tables and is stamped at this
revision (see the package docstring). One that holds only some of them (a single module's
create_all on its own engine) gets the missing ones here: a table that exists is left alone.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from factory_resources.migrations import translated_schema

revision: str = "0001_baseline"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Dropped children first (character_images refers to characters).
TABLES = (
    "character_images", "voices", "publications", "post_slots", "post_metrics",
    "platform_accounts", "cost_lines", "characters",
)  # fmt: skip


def _create_table(name: str, *items: sa.SchemaItem, indexes: dict[str, list[str]]) -> None:
    bind = op.get_bind()
    if sa.inspect(bind).has_table(name, schema=translated_schema(bind)):
        return
    op.create_table(name, *items)
    for index, columns in indexes.items():
        op.create_index(index, name, columns, unique=False)


def upgrade() -> None:
    _create_table(
        "characters",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reference_file", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "name", name="uq_characters_owner_name"),
        indexes={
            "ix_characters_owner": ["owner"],
        },
    )
    _create_table(
        "cost_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("topic_key", sa.String(length=120), nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=120), nullable=False),
        sa.Column("unit", sa.String(length=40), nullable=False),
        sa.Column("units", sa.Float(), nullable=False),
        sa.Column("unit_price_usd", sa.Float(), nullable=False),
        sa.Column("amount_usd", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes={
            "ix_cost_lines_owner": ["owner"],
            "ix_cost_lines_topic_key": ["topic_key"],
        },
    )
    _create_table(
        "platform_accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=120), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("account_name", sa.String(length=200), nullable=False),
        sa.Column("token_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "owner", "channel", "platform", name="uq_platform_accounts_owner_channel"
        ),
        indexes={
            "ix_platform_accounts_owner": ["owner"],
        },
    )
    _create_table(
        "post_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=120), nullable=False),
        sa.Column("topic_key", sa.String(length=120), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("post_id", sa.String(length=200), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("views", sa.BigInteger(), nullable=True),
        sa.Column("likes", sa.BigInteger(), nullable=True),
        sa.Column("comments", sa.BigInteger(), nullable=True),
        sa.Column("shares", sa.BigInteger(), nullable=True),
        sa.Column("saves", sa.BigInteger(), nullable=True),
        sa.Column("watch_time_s", sa.Float(), nullable=True),
        sa.Column("avg_view_duration_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        indexes={
            "ix_post_metrics_owner_channel": ["owner", "channel"],
            "ix_post_metrics_post": ["platform", "post_id", "fetched_at"],
        },
    )
    _create_table(
        "post_slots",
        sa.Column("topic_key", sa.String(length=120), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=120), nullable=False),
        sa.Column("slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("topic_key"),
        sa.UniqueConstraint("channel", "slot_at", name="uq_post_slots_channel_slot"),
        indexes={
            "ix_post_slots_owner": ["owner"],
            "ix_post_slots_slot_at": ["slot_at"],
        },
    )
    _create_table(
        "publications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=120), nullable=False),
        sa.Column("topic_key", sa.String(length=120), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("marker", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("post_id", sa.String(length=200), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("marker"),
        sa.UniqueConstraint("topic_key", "platform", "account", name="uq_publications_post"),
        indexes={
            "ix_publications_owner": ["owner"],
            "ix_publications_topic_key": ["topic_key"],
        },
    )
    _create_table(
        "voices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("provider_voice_id", sa.String(length=120), nullable=True),
        sa.Column("language", sa.String(length=8), server_default="en", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("samples", sa.JSON(), nullable=False),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.Column("chars_per_second", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "name", name="uq_voices_owner_name"),
        indexes={
            "ix_voices_owner": ["owner"],
        },
    )
    _create_table(
        "character_images",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("character_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("pose", sa.String(length=60), nullable=False),
        sa.Column("emotion", sa.String(length=60), nullable=False),
        sa.Column("background", sa.String(length=120), nullable=False),
        sa.Column("topic_key", sa.String(length=120), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("measure", sa.String(length=40), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["character_id"], ["characters.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        indexes={
            "ix_character_images_character_id": ["character_id"],
            "ix_character_images_owner": ["owner"],
        },
    )


def downgrade() -> None:
    for name in TABLES:
        op.drop_table(name)
