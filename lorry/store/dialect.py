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

from lorry.ids import is_id
from lorry.store.tables import TYPE_SHIFT, items

__all__ = ["Dialect", "ItemRow", "SQLiteDialect", "dialect_for"]

#: pk, id, item_type_pk, data, created_at, updated_at (a new item's version
#: is 1, and the job that creates it is one for all its rows)
ItemRow = tuple[int, str, int, str, int, int]

_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Constants are literals, not parameters: binding is a fair share of the cost
# of each row. The job id is spliced in only once checked to be an id.
_INSERT_ITEMS = (
    "INSERT INTO items (pk, id, item_type_pk, data, version, created_at,"
    " updated_at, created_by_job, updated_by_job)"
    " VALUES (?, ?, ?, ?, 1, ?, ?, {job}, NULL)"
    " ON CONFLICT DO NOTHING"
)


def _job_literal(job_id: str | None) -> str:
    if job_id is None:
        return "NULL"
    if not is_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"'{job_id}'"


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

    def index_name(self, type_pk: int, key: str, unique: bool) -> str:
        prefix = "ux" if unique else "ix"
        return f"{prefix}_items_{int(type_pk)}_{_checked_key(key)}"

    def create_field_index(
        self, conn: sa.Connection, type_pk: int, key: str, unique: bool
    ) -> None:
        """Index one field of one item type (unique fields, and link fields)."""
        raise NotImplementedError

    def drop_field_index(
        self, conn: sa.Connection, type_pk: int, key: str, unique: bool
    ) -> None:
        name = self.index_name(type_pk, key, unique)
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")

    def referrers(
        self,
        conn: sa.Connection,
        type_pk: int,
        key: str,
        many: bool,
        targets: Sequence[str],
    ) -> list[tuple[str, str]]:
        """(target id, referring item id) for items whose link field names one."""
        raise NotImplementedError

    def insert_items(
        self, conn: sa.Connection, rows: Sequence[ItemRow], job_id: str | None
    ) -> int:
        """Insert rows, skipping those that break a unique index; return count."""
        raise NotImplementedError

    def link_pairs_sql(self, type_pk: int, key: str, many: bool, sources: str) -> str:
        """SQL selecting ``(source pk, target id)``: the links that field ``key``
        holds in the items of one type listed in table ``sources`` (a column
        ``pk``)."""
        raise NotImplementedError

    def matches(self, col: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
        """``col`` matches a regular expression (RE2 syntax), as SQL."""
        raise NotImplementedError


class SQLiteDialect(Dialect):
    name = "sqlite"

    def field_expr(self, key: str) -> ColumnElement[Any]:
        # The path is a literal, not a bound parameter, so that the expression
        # is the same as the one in the unique indexes and SQLite uses them.
        path: ColumnElement[Any] = sa.literal_column(f"'$.{_checked_key(key)}'")
        return sa.func.json_extract(items.c.data, path)

    def matches(self, col: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
        # lorry_matches is registered on each connection (lorry.store.db) and
        # runs RE2, never the backtracking re module.
        return sa.func.lorry_matches(pattern, col).is_(True)

    def create_field_index(
        self, conn: sa.Connection, type_pk: int, key: str, unique: bool
    ) -> None:
        name = self.index_name(type_pk, key, unique)
        kind = "UNIQUE INDEX" if unique else "INDEX"
        conn.exec_driver_sql(
            f"CREATE {kind} IF NOT EXISTS {name} ON items "
            f"(json_extract(data, '$.{_checked_key(key)}')) "
            f"WHERE item_type_pk = {int(type_pk)}"
        )

    def referrers(
        self,
        conn: sa.Connection,
        type_pk: int,
        key: str,
        many: bool,
        targets: Sequence[str],
    ) -> list[tuple[str, str]]:
        path = f"'$.{_checked_key(key)}'"
        if many:
            # A list of links has no index: this scans the type's items.
            lo, hi = int(type_pk) << TYPE_SHIFT, (int(type_pk) + 1) << TYPE_SHIFT
            template = (
                "SELECT je.value, items.id FROM items, json_each(items.data, "
                f"{path}) AS je WHERE items.pk >= {lo} AND items.pk < {hi} "
                "AND je.value IN ({marks})"
            )
        else:
            template = (
                f"SELECT json_extract(data, {path}), id FROM items "
                f"WHERE item_type_pk = {int(type_pk)} "
                f"AND json_extract(data, {path}) IN ({{marks}})"
            )
        found: list[tuple[str, str]] = []
        for start in range(0, len(targets), 5000):
            batch = tuple(targets[start : start + 5000])
            query = template.format(marks=", ".join("?" * len(batch)))
            found.extend((r[0], r[1]) for r in conn.exec_driver_sql(query, batch))
        return found

    def link_pairs_sql(self, type_pk: int, key: str, many: bool, sources: str) -> str:
        path = f"'$.{_checked_key(key)}'"
        lo, hi = int(type_pk) << TYPE_SHIFT, (int(type_pk) + 1) << TYPE_SHIFT
        # Range on pk, not a type column: the type is in the key's high bits.
        source = f"{sources} AS f JOIN items AS src ON src.pk = f.pk"
        where = f"WHERE f.pk >= {lo} AND f.pk < {hi}"
        if many:
            return (
                f"SELECT src.pk AS source_pk, je.value AS target_id FROM {source}, "
                f"json_each(src.data, {path}) AS je {where}"
            )
        return (
            f"SELECT src.pk AS source_pk, json_extract(src.data, {path}) AS target_id "
            f"FROM {source} "
            f"{where} AND json_extract(src.data, {path}) IS NOT NULL"
        )

    def insert_items(
        self, conn: sa.Connection, rows: Sequence[ItemRow], job_id: str | None
    ) -> int:
        raw = conn.connection.driver_connection
        assert raw is not None
        before: int = raw.total_changes
        cursor = raw.cursor()
        try:
            cursor.executemany(_INSERT_ITEMS.format(job=_job_literal(job_id)), rows)
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
