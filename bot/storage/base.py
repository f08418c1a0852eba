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

# Erasure conventions, read by the repositories so that a table added later (the quota
# tables, say) is covered without touching them. Put them in the table's `info`:
#   info={ERASE_USER: "user_id"}   -> `/voice forget` deletes the rows where that column is
#                                     the user (ERASE_USER_MODE: "null" sets it to NULL
#                                     instead, for rows whose totals must survive).
#   info={ERASE_GUILD: "guild_id"} -> purging a departed guild deletes its rows.
ERASE_USER = "erase_user"
ERASE_USER_MODE = "erase_user_mode"
ERASE_GUILD = "erase_guild"
