"""The one `MetaData` every table of the bot is declared on.

Alembic's env imports every table module and compares against this object, so
constraint names must be deterministic: the naming convention gives them names
that SQLite's batch mode and PostgreSQL agree on.
"""

from sqlalchemy import MetaData

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
