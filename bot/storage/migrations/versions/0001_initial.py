"""Initial schema: user and guild voice settings, reader configuration.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tuning_columns() -> list[sa.Column]:
    return [
        sa.Column("voice_id", sa.String(64), nullable=True),
        sa.Column("stability", sa.Float(), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("style", sa.Float(), nullable=True),
        sa.Column("speed", sa.Float(), nullable=True),
        sa.Column("speaker_boost", sa.Boolean(), nullable=True),
    ]


def _updated_at() -> sa.Column:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        *_tuning_columns(),
        sa.Column("autoread", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("nickname", sa.String(32), nullable=True),
        _updated_at(),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_settings")),
    )
    op.create_table(
        "user_guild_overrides",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        *_tuning_columns(),
        _updated_at(),
        sa.PrimaryKeyConstraint("guild_id", "user_id", name=op.f("pk_user_guild_overrides")),
    )
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        *_tuning_columns(),
        sa.Column("model_id", sa.String(64), nullable=True),
        sa.Column("lock_voice", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        _updated_at(),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_guild_settings")),
    )
    op.create_table(
        "reader_channels",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("channel_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("guild_id", "channel_id", name=op.f("pk_reader_channels")),
    )
    op.create_table(
        "reader_blocks",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("guild_id", "user_id", name=op.f("pk_reader_blocks")),
    )
    op.create_table(
        "reader_options",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("require_voice", sa.Boolean(), nullable=True),
        sa.Column("read_voice_chat", sa.Boolean(), nullable=True),
        sa.Column("read_threads", sa.Boolean(), nullable=True),
        sa.Column("read_bots", sa.Boolean(), nullable=True),
        sa.Column("required_role_id", sa.BigInteger(), autoincrement=False, nullable=True),
        sa.Column("skip_prefix", sa.String(16), nullable=True),
        sa.Column("say_name", sa.Boolean(), nullable=True),
        sa.Column("max_length", sa.Integer(), nullable=True),
        sa.Column("emoji_mode", sa.String(16), nullable=True),
        sa.Column("spoilers_mode", sa.String(16), nullable=True),
        sa.Column("autojoin", sa.Boolean(), nullable=True),
        sa.Column("user_rate_limit", sa.Integer(), nullable=True),
        sa.Column("max_wait_seconds", sa.Integer(), nullable=True),
        _updated_at(),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_reader_options")),
    )


def downgrade() -> None:
    op.drop_table("reader_options")
    op.drop_table("reader_blocks")
    op.drop_table("reader_channels")
    op.drop_table("guild_settings")
    op.drop_table("user_guild_overrides")
    op.drop_table("user_settings")
