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

__all__ = [
    "MAX_RANK_ROUNDS",
    "ROW_COLUMNS",
    "ExportSet",
    "LinkField",
    "exported_types",
    "link_fields",
    "read_snapshot",
]

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
_EDGES = "lorry_export_edges"
#: Rounds of ranking at most; see ExportSet._rank.
MAX_RANK_ROUNDS = 64


@dataclass(frozen=True, slots=True)
class LinkField:
    type_pk: int
    key: str
    many: bool


def exported_types(
    chosen: list[ItemTypeDef], all_types: list[ItemTypeDef], depth: int
) -> list[ItemTypeDef]:
    """The selected types and the types their links reach within ``depth``."""
    by_key = {t.api_key: t for t in all_types}
    keys = {t.api_key for t in chosen}
    frontier = set(keys)
    for _ in range(depth):
        reached = {
            target
            for key in frontier
            for f in by_key[key].fields
            if f.field_type in ("link", "links")
            for target in f.validators.item_types or ()
            if target in by_key
        }
        frontier = reached - keys
        keys |= reached
    return [t for t in all_types if t.api_key in keys]


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
        """Settle which items the export holds, and in which order; return
        how many.

        With linked items, each selected item and each item linked within
        ``depth`` steps is noted once in a temporary table. Each then gets a
        rank, the longest path of links to it from within the set: writing
        the highest ranks first puts linked items before the items linking
        to them, so that an import of the file finds each link's target
        already there.
        """
        if not self.depth:
            sql, params = self._primary(sa.func.count())
            return int(self._raw.execute(sql, params).fetchone()[0])
        for table in (_SET, _FRONTIER, _EDGES):
            self._raw.execute(f"DROP TABLE IF EXISTS temp.{table}")
        self._raw.execute(
            f"CREATE TEMP TABLE {_SET} (pk INTEGER PRIMARY KEY, "
            "level INTEGER NOT NULL, ord INTEGER, rank INTEGER NOT NULL DEFAULT 0)"
        )
        self._raw.execute(f"CREATE TEMP TABLE {_FRONTIER} (pk INTEGER PRIMARY KEY)")
        ranked = sa.func.row_number().over(order_by=self.selection.order)
        select_sql, params = self._primary(items.c.pk, sa.literal(0), ranked)
        self._raw.execute(f"INSERT INTO {_SET} (pk, level, ord) {select_sql}", params)
        for level in range(1, self.depth + 1):
            if not self._spread(level):
                break
        self._rank()
        return int(self._raw.execute(f"SELECT count(*) FROM {_SET}").fetchone()[0])

    def _links_from(self, sources: str) -> Iterator[str]:
        """SQL of ``(source pk, target pk)`` for each link field, from the
        items listed in table ``sources``."""
        for link in self.links:
            pairs = self.dialect.link_pairs_sql(
                link.type_pk, link.key, link.many, sources
            )
            yield (
                f"SELECT p.source_pk AS src, t.pk AS dst FROM ({pairs}) AS p "
                "JOIN items AS t ON t.id = p.target_id"
            )

    def _spread(self, level: int) -> bool:
        """Add the items linked from those found at ``level - 1``; an item
        already in the set stays where it is, which ends every cycle."""
        self._raw.execute(f"DELETE FROM {_FRONTIER}")
        self._raw.execute(
            f"INSERT INTO {_FRONTIER} (pk) SELECT pk FROM {_SET} "
            f"WHERE level = {level - 1}"
        )
        if self._raw.execute(f"SELECT 1 FROM {_FRONTIER} LIMIT 1").fetchone() is None:
            return False
        for links in self._links_from(_FRONTIER):
            # "WHERE true" lets SQLite's parser tell ON CONFLICT from a join.
            self._raw.execute(
                f"INSERT INTO {_SET} (pk, level) SELECT l.dst, {level} "
                f"FROM ({links}) AS l WHERE true ON CONFLICT (pk) DO NOTHING"
            )
        return True

    def _rank(self) -> None:
        """Rank by longest link path within the set, in rounds of relaxation.

        A chain of n links settles in n rounds. A cycle never settles (its
        members cannot all come before each other), so the rounds stop at
        MAX_RANK_ROUNDS and a cycle's items keep the order they reached.
        """
        self._raw.execute(
            f"CREATE TEMP TABLE {_EDGES} (src INTEGER NOT NULL, dst INTEGER NOT NULL)"
        )
        for links in self._links_from(_SET):
            self._raw.execute(
                f"INSERT INTO {_EDGES} (src, dst) SELECT l.src, l.dst "
                f"FROM ({links}) AS l JOIN {_SET} AS s ON s.pk = l.dst "
                "WHERE l.src != l.dst"
            )
        for _ in range(MAX_RANK_ROUNDS):
            cursor = self._raw.execute(
                f"UPDATE {_SET} AS d SET rank = m.rank FROM ("
                f"SELECT e.dst AS pk, max(s.rank) + 1 AS rank FROM {_EDGES} AS e "
                f"JOIN {_SET} AS s ON s.pk = e.src GROUP BY e.dst"
                ") AS m WHERE m.pk = d.pk AND m.rank > d.rank"
            )
            if cursor.rowcount == 0:
                break

    def batches(self, size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The rows (ROW_COLUMNS), in file order, ``size`` at a time."""
        if self.depth:
            cursor = self._raw.execute(
                f"SELECT {_SELECT} FROM {_SET} AS e JOIN items ON items.pk = e.pk "
                "ORDER BY e.rank DESC, e.ord, e.pk"
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
