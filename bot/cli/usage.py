"""`python -m bot usage [--guild ID] [--json]`: each guild's credits this period, from the database.

Read-only: it opens DATABASE_URL without migrating, reads through the ledger's views
(on SQLite without taking the write lock, so a running bot is not held up) and prints the
allowance, the credits used and held, the reset date and the top users of each guild.
Amounts are ElevenLabs credits; ids in the JSON are strings, as Discord sends them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import BotError
from bot.quota.models import GuildUsage, UserTotal

TOP_DEFAULT = 5


@dataclass(frozen=True, slots=True)
class GuildReport:
    usage: GuildUsage
    top: list[UserTotal]

    def as_json(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "guild_id": str(usage.guild_id),
            "allowance": usage.allowance,
            "allowance_is_default": usage.allowance_is_default,
            "unlimited": usage.unlimited,
            "used": usage.used,
            "reserved": usage.reserved,
            "remaining": usage.remaining,
            "period_start": usage.period_start.isoformat(),
            "resets_at": usage.resets_at.isoformat(),
            "reset_day": usage.reset_day,
            "user_daily_cap": usage.user_daily_cap,
            "top_users": [{"user_id": str(t.user_id), "used": t.used} for t in self.top],
        }


def add_parser(sub: argparse._SubParsersAction) -> None:
    from bot.cli import positive_int

    parser = sub.add_parser("usage", help="credits used per guild this period (from the database)")
    parser.add_argument("--guild", type=positive_int, metavar="ID", help="only this guild")
    parser.add_argument(
        "--top", type=positive_int, default=TOP_DEFAULT, help="top users listed per guild"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    from bot.cli.common import cli_settings

    settings = cli_settings(verbose=args.verbose)
    reports = await read_reports(settings, guild_id=args.guild, top=args.top)
    if args.json:
        json.dump([report.as_json() for report in reports], sys.stdout, indent=2)
        print()
        return 0
    if not reports:
        print("No guild has used text-to-speech yet.", file=sys.stderr)
        return 0
    print(format_report(reports))
    return 0


async def read_reports(settings: Any, *, guild_id: int | None, top: int) -> list[GuildReport]:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.quota.service import QuotaSettings
    from bot.storage.engine import create_engine, is_sqlite, reading

    url = settings.database_url
    if is_sqlite(url):
        _require_sqlite_file(url)
    engine = create_engine(url)
    try:
        ledger = QuotaSettings.from_settings(settings).ledger(reading(engine))
        if guild_id is None:
            usages = await ledger.all_guilds_usage()
        else:
            usages = [await ledger.guild_usage(guild_id)]
        return [GuildReport(usage, await ledger.top_users(usage.guild_id, top)) for usage in usages]
    except (SQLAlchemyError, OSError) as exc:
        first = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise BotError(
            f"Cannot read the quota tables ({first}); is the database migrated? "
            "Run `python -m bot db upgrade`."
        ) from None
    finally:
        await engine.dispose()


def _require_sqlite_file(url: str) -> None:
    """Opening a missing SQLite file would create an empty one: say so instead."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database or ""
    in_file = database and database != ":memory:" and not database.startswith("file:")
    if in_file and not Path(database).is_file():
        raise BotError(f"No database at {database}: check DATABASE_URL, or start the bot once.")


def _allowance(usage: GuildUsage) -> str:
    text = "unlimited" if usage.unlimited else f"{usage.allowance:,}"
    return f"{text} (default)" if usage.allowance_is_default else text


def format_report(reports: list[GuildReport]) -> str:
    header = ("GUILD", "ALLOWANCE", "USED", "RESERVED", "LEFT", "USED %", "RESETS")
    rows = [
        (
            str(u.guild_id),
            _allowance(u),
            f"{u.used:,}",
            f"{u.reserved:,}",
            "-" if u.remaining is None else f"{u.remaining:,}",
            "-" if u.unlimited else f"{u.used * 100 // u.allowance}%",
            f"{u.resets_at:%Y-%m-%d}",
        )
        for u in (report.usage for report in reports)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    tops = [report for report in reports if report.top]
    if tops:
        lines += ["", "Top users this period (credits used):"]
        for report in tops:
            people = ", ".join(f"{t.user_id} {t.used:,}" for t in report.top)
            lines.append(f"  {report.usage.guild_id}: {people}")
    return "\n".join(lines)
