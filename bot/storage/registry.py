"""Which modules declare tables on the shared `metadata`.

Alembic's autogenerate and the erasure code (`/voice forget`, purging a departed guild)
must see every table, whichever features happen to have been imported so far. Optional
features (quota) may be absent from a checkout: their absence is not an error, a broken
module is.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from bot.storage.base import metadata

TABLE_MODULES: tuple[str, ...] = ("bot.storage.tables",)
OPTIONAL_TABLE_MODULES: tuple[str, ...] = ("bot.quota.tables",)


def load_all_tables() -> MetaData:
    """Import every table module (idempotent) and return the shared metadata."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    for name in OPTIONAL_TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            # Only "this module does not exist"; a missing import inside it is a bug.
            if error.name is None or not name.startswith(error.name):
                raise
    return metadata
