"""Quota: guild config, period and day counters, reservations, the synthesis ledger.

Revision ID: 0002_quota
Revises: 0001_initial
Create Date: 2026-11-22

Only CREATE TABLE / CREATE INDEX (and their DROPs), which SQLite runs natively: no ALTER,
so no batch copy is needed in either direction. Constraint names are spelled out with
`op.f` so they are the same whatever naming convention the migration context carries.
No column holds message text.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_quota"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _snowflake(name: str, *, nullable: bool) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), autoincrement=False, nullable=nullable)


def _credits(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "quota_guild_config",
        _snowflake("guild_id", nullable=False),
        sa.Column("monthly_allowance", sa.BigInteger(), nullable=True),
        sa.Column("user_daily_cap", sa.BigInteger(), nullable=True),
        sa.Column("reset_day", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        _snowflake("alerts_channel_id", nullable=True),
        sa.CheckConstraint(
            "reset_day BETWEEN 1 AND 28", name=op.f("ck_quota_guild_config_reset_day_range")
        ),
        sa.CheckConstraint(
            "monthly_allowance IS NULL OR monthly_allowance >= 0",
            name=op.f("ck_quota_guild_config_allowance_sign"),
        ),
        sa.CheckConstraint(
            "user_daily_cap IS NULL OR user_daily_cap > 0",
            name=op.f("ck_quota_guild_config_cap_sign"),
        ),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_quota_guild_config")),
    )
    op.create_table(
        "quota_guild_period",
        _snowflake("guild_id", nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        _credits("used"),
        _credits("reserved"),
        sa.Column("alert_80_sent", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("alert_100_sent", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_quota_guild_period_used_sign")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_quota_guild_period_reserved_sign")),
        sa.PrimaryKeyConstraint("guild_id", "period_start", name=op.f("pk_quota_guild_period")),
    )
    op.create_table(
        "quota_user_day",
        _snowflake("guild_id", nullable=False),
        _snowflake("user_id", nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        _credits("used"),
        _credits("reserved"),
        sa.CheckConstraint("used >= 0", name=op.f("ck_quota_user_day_used_sign")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_quota_user_day_reserved_sign")),
        sa.PrimaryKeyConstraint("guild_id", "user_id", "day", name=op.f("pk_quota_user_day")),
    )
    op.create_index("ix_quota_user_day_guild_id_day", "quota_user_day", ["guild_id", "day"])
    op.create_index("ix_quota_user_day_user_id", "quota_user_day", ["user_id"])
    op.create_table(
        "quota_reservation",
        sa.Column("id", sa.Uuid(), nullable=False),
        _snowflake("guild_id", nullable=False),
        _snowflake("user_id", nullable=True),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("characters", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=True),
        sa.Column("voice_id", sa.String(64), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("state", sa.String(16), server_default=sa.text("'held'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("credits >= 0", name=op.f("ck_quota_reservation_credits_sign")),
        sa.CheckConstraint(
            "state IN ('held', 'settled', 'released', 'expired')",
            name=op.f("ck_quota_reservation_state_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_reservation")),
    )
    op.create_index(
        "ix_quota_reservation_state_expires_at", "quota_reservation", ["state", "expires_at"]
    )
    op.create_index("ix_quota_reservation_user_id", "quota_reservation", ["user_id"])
    op.create_table(
        "quota_ledger",
        sa.Column("id", sa.Uuid(), nullable=False),
        _snowflake("guild_id", nullable=False),
        _snowflake("user_id", nullable=True),
        sa.Column("credits_reserved", sa.BigInteger(), nullable=False),
        sa.Column("credits_billed", sa.BigInteger(), nullable=False),
        sa.Column("characters", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=True),
        sa.Column("voice_id", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_ledger")),
    )
    op.create_index("ix_quota_ledger_created_at", "quota_ledger", ["created_at"])
    op.create_index(
        "ix_quota_ledger_guild_id_created_at", "quota_ledger", ["guild_id", "created_at"]
    )
    op.create_index("ix_quota_ledger_user_id", "quota_ledger", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_quota_ledger_user_id", table_name="quota_ledger")
    op.drop_index("ix_quota_ledger_guild_id_created_at", table_name="quota_ledger")
    op.drop_index("ix_quota_ledger_created_at", table_name="quota_ledger")
    op.drop_table("quota_ledger")
    op.drop_index("ix_quota_reservation_user_id", table_name="quota_reservation")
    op.drop_index("ix_quota_reservation_state_expires_at", table_name="quota_reservation")
    op.drop_table("quota_reservation")
    op.drop_index("ix_quota_user_day_user_id", table_name="quota_user_day")
    op.drop_index("ix_quota_user_day_guild_id_day", table_name="quota_user_day")
    op.drop_table("quota_user_day")
    op.drop_table("quota_guild_period")
    op.drop_table("quota_guild_config")
