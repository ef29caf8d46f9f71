"""Everything that differs between databases, in one place.

Queries elsewhere are SQLAlchemy Core; this module supplies the pieces that
Core cannot express portably: reading a field out of an item's JSON, the
per-field unique indexes, and the bulk insert that goes below Core to the
driver because it is the hot path (Core's executemany costs about 0.6 of the
driver's own on SQLite).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from lorry.store.tables import items

__all__ = ["Dialect", "ItemRow", "SQLiteDialect", "dialect_for"]

#: pk, id, item_type_pk, data, version, created_at, updated_at,
#: created_by_job, updated_by_job
ItemRow = tuple[int, str, int, str, int, int, int, str | None, str | None]

_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

_INSERT_ITEMS = (
    "INSERT INTO items (pk, id, item_type_pk, data, version, created_at,"
    " updated_at, created_by_job, updated_by_job)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)


def _checked_key(key: str) -> str:
    # Field keys are spliced into JSON paths and index names, so they must be
    # the validated identifiers that lorry.schema allows, nothing else.
    if not _KEY_RE.match(key):
        raise ValueError(f"not a valid field key: {key!r}")
    return key


class Dialect:
    name = "generic"

    def field_expr(self, key: str) -> ColumnElement[Any]:
        raise NotImplementedError

    def unique_index_name(self, type_pk: int, key: str) -> str:
        return f"ux_items_{int(type_pk)}_{_checked_key(key)}"

    def create_unique_index(self, conn: sa.Connection, type_pk: int, key: str) -> None:
        raise NotImplementedError

    def drop_unique_index(self, conn: sa.Connection, type_pk: int, key: str) -> None:
        name = self.unique_index_name(type_pk, key)
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")

    def insert_items(self, conn: sa.Connection, rows: Sequence[ItemRow]) -> int:
        """Insert rows, skipping those that break a unique index; return count."""
        raise NotImplementedError


class SQLiteDialect(Dialect):
    name = "sqlite"

    def field_expr(self, key: str) -> ColumnElement[Any]:
        # The path is a literal, not a bound parameter, so that the expression
        # is the same as the one in the unique indexes and SQLite uses them.
        path: ColumnElement[Any] = sa.literal_column(f"'$.{_checked_key(key)}'")
        return sa.func.json_extract(items.c.data, path)

    def create_unique_index(self, conn: sa.Connection, type_pk: int, key: str) -> None:
        name = self.unique_index_name(type_pk, key)
        conn.exec_driver_sql(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON items "
            f"(json_extract(data, '$.{_checked_key(key)}')) "
            f"WHERE item_type_pk = {int(type_pk)}"
        )

    def insert_items(self, conn: sa.Connection, rows: Sequence[ItemRow]) -> int:
        raw = conn.connection.driver_connection
        assert raw is not None
        before: int = raw.total_changes
        cursor = raw.cursor()
        try:
            cursor.executemany(_INSERT_ITEMS, rows)
        finally:
            cursor.close()
        return int(raw.total_changes) - before


def dialect_for(name: str) -> Dialect:
    if name == "sqlite":
        return SQLiteDialect()
    raise ValueError(
        f"database {name!r} is not supported by this version of Lorry; "
        "leave LORRY_DATABASE_URL unset to use the embedded SQLite store"
    )
