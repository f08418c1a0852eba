"""`python -m bot db upgrade`: bring the database schema to the newest version by hand.

The bot does this itself at start-up; this is for operators who migrate before
rolling out several shard processes.
"""

from __future__ import annotations

import argparse

from bot.config import load_settings
from bot.errors import BotError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from bot.cli import OneLineParser

    db = sub.add_parser("db", help="database maintenance")
    actions = db.add_subparsers(dest="action", required=True, parser_class=OneLineParser)
    upgrade = actions.add_parser("upgrade", help="apply every pending migration")
    upgrade.set_defaults(handler=run_upgrade)


async def run_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.storage.migrate import upgrade_database

    settings = load_settings()
    try:
        revision = await upgrade_database(settings.database_url)
    except (SQLAlchemyError, OSError) as exc:
        raise BotError(
            f"Cannot migrate the database: {type(exc).__name__}: {exc}".split("\n")[0]
        ) from None
    print(f"database at revision {revision}")
    return 0
