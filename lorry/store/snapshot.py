"""Reading one consistent snapshot of many items, for exports.

Everything an export reads happens in one read transaction on one
connection: in WAL mode SQLite then shows every statement the same
snapshot, while writers go on committing. Rows are fetched from the
driver's cursor in batches, never as a list of all items, and linked items
are found with a temporary table on disk (not a Python set of ids), so that
memory stays flat whatever the size of the export.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lorry.schema.fields import ItemTypeDef
from lorry.store.db import Database
from lorry.store.dialect import Dialect
from lorry.store.selection import Selection
from lorry.store.tables import items

__all__ = ["ROW_COLUMNS", "ExportSet", "LinkField", "link_fields", "read_snapshot"]

#: The columns of each row an export reads, in this order; ``data`` comes as
#: bytes, ready to be spliced into the output without decoding.
ROW_COLUMNS = (
    "id",
    "item_type_pk",
    "data",
    "version",
    "created_at",
    "updated_at",
    "created_by_job",
    "updated_by_job",
)
_SELECT = (
    "items.id, items.item_type_pk, CAST(items.data AS BLOB), items.version, "
    "items.created_at, items.updated_at, items.created_by_job, items.updated_by_job"
)
_SET = "lorry_export_set"
_FRONTIER = "lorry_export_frontier"


@dataclass(frozen=True, slots=True)
class LinkField:
    type_pk: int
    key: str
    many: bool


def link_fields(types: list[ItemTypeDef]) -> list[LinkField]:
    return [
        LinkField(t.pk, f.api_key, f.field_type == "links")
        for t in types
        for f in t.fields
        if f.field_type in ("link", "links")
    ]


@contextmanager
def read_snapshot(db: Database) -> Iterator[sa.Connection]:
    """One read transaction whose temporary tables live in a file.

    The server's connections keep temporary data in memory (small sorts run
    faster there); an export's set of linked items may hold millions of
    rows, so its connection switches to a file, outside any transaction as
    SQLite requires, and back when done (which drops the temporary tables).
    """
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA temp_store=FILE")
        try:
            with conn.begin():
                yield conn
        finally:
            raw.execute("PRAGMA temp_store=MEMORY")


class ExportSet:
    """The rows of one export, read inside :func:`read_snapshot`."""

    def __init__(
        self,
        conn: sa.Connection,
        dialect: Dialect,
        selection: Selection,
        depth: int,
        links: list[LinkField],
    ) -> None:
        self.conn = conn
        self.dialect = dialect
        self.selection = selection
        self.depth = depth
        self.links = links
        raw = conn.connection.driver_connection
        assert raw is not None
        self._raw: Any = raw

    def _compiled(self, stmt: sa.Select[Any]) -> tuple[str, list[Any]]:
        compiled = stmt.compile(
            dialect=self.conn.dialect, compile_kwargs={"render_postcompile": True}
        )
        params = compiled.construct_params()
        order = compiled.positiontup or []
        return str(compiled), [params[name] for name in order]

    def _primary(self, *columns: Any) -> tuple[str, list[Any]]:
        stmt = sa.select(*columns).select_from(items).where(*self.selection.where)
        return self._compiled(stmt)

    def collect(self) -> int:
        """Settle which items the export holds; return how many.

        With linked items, each selected item and each item linked within
        ``depth`` steps is noted once in a temporary table, with the length
        of the longest link path found to it (up to ``depth``): writing
        the deepest first puts linked items before the items linking to
        them, and a cycle only raises its members up to ``depth``.
        """
        if not self.depth:
            sql, params = self._primary(sa.func.count())
            return int(self._raw.execute(sql, params).fetchone()[0])
        self._raw.execute(f"DROP TABLE IF EXISTS temp.{_SET}")
        self._raw.execute(
            f"CREATE TEMP TABLE {_SET} "
            "(pk INTEGER PRIMARY KEY, depth INTEGER NOT NULL, ord INTEGER)"
        )
        order = self.selection.order
        ranked = sa.func.row_number().over(order_by=order)
        select_sql, params = self._primary(items.c.pk, sa.literal(0), ranked)
        self._raw.execute(f"INSERT INTO {_SET} (pk, depth, ord) {select_sql}", params)
        for level in range(1, self.depth + 1):
            if not self._spread(level):
                break
        return int(self._raw.execute(f"SELECT count(*) FROM {_SET}").fetchone()[0])

    def _spread(self, level: int) -> bool:
        """Add (or deepen) the items linked from those at ``level - 1``."""
        self._raw.execute(f"DROP TABLE IF EXISTS temp.{_FRONTIER}")
        self._raw.execute(
            f"CREATE TEMP TABLE {_FRONTIER} AS "
            f"SELECT pk FROM {_SET} WHERE depth = {level - 1}"
        )
        if self._raw.execute(f"SELECT 1 FROM {_FRONTIER} LIMIT 1").fetchone() is None:
            return False
        for link in self.links:
            targets = self.dialect.linked_ids_sql(
                link.type_pk, link.key, link.many, _FRONTIER
            )
            self._raw.execute(
                f"INSERT INTO {_SET} (pk, depth) "
                f"SELECT t.pk, {level} FROM items AS t WHERE t.id IN ({targets}) "
                "ON CONFLICT (pk) DO UPDATE SET depth = excluded.depth "
                f"WHERE excluded.depth > {_SET}.depth"
            )
        return True

    def batches(self, size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The rows (ROW_COLUMNS), in file order, ``size`` at a time."""
        if self.depth:
            cursor = self._raw.execute(
                f"SELECT {_SELECT} FROM {_SET} AS e JOIN items ON items.pk = e.pk "
                "ORDER BY e.depth DESC, e.ord, e.pk"
            )
        else:
            stmt = (
                sa.select(sa.text(_SELECT))
                .select_from(items)
                .where(*self.selection.where)
                .order_by(*self.selection.order)
            )
            sql, params = self._compiled(stmt)
            cursor = self._raw.execute(sql, params)
        try:
            while rows := cursor.fetchmany(size):
                yield rows
        finally:
            cursor.close()
