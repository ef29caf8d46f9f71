"""The item repository: reads, listing, and the set-based writes of jobs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from lorry.clock import to_iso
from lorry.store.dialect import Dialect, ItemRow
from lorry.store.tables import TYPE_SHIFT, items

__all__ = [
    "ItemState",
    "delete_ids",
    "fetch_states",
    "find_holder",
    "insert_rows",
    "link_targets",
    "list_rows",
    "lookup_by_field",
    "next_keys",
    "of_types",
    "render",
    "type_range",
    "update_rows",
]

# SQLite allows 32766 bound parameters per statement; stay well below.
_IN_BATCH = 5000
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class ItemState(msgspec.Struct):
    id: str
    type_pk: int
    data: str
    version: int


def _batches(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _IN_BATCH):
        yield values[start : start + _IN_BATCH]


def render(row: Any, type_keys: dict[int, str], **meta: Any) -> dict[str, Any]:
    """A stored row as the API shows an item: flat, system keys beside fields."""
    data = _decode(row.data)
    data.pop("item_type", None)
    out: dict[str, Any] = {"id": row.id, "item_type": type_keys[row.item_type_pk]}
    out.update(data)
    out["created_at"] = to_iso(row.created_at)
    out["updated_at"] = to_iso(row.updated_at)
    out["meta"] = {
        "version": row.version,
        "created_by_job": row.created_by_job,
        "updated_by_job": row.updated_by_job,
        **meta,
    }
    return out


def get_row(conn: sa.Connection, item_id: str) -> Any:
    return conn.execute(sa.select(items).where(items.c.id == item_id)).first()


def rows_by_ids(conn: sa.Connection, ids: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for batch in _batches(ids):
        for row in conn.execute(sa.select(items).where(items.c.id.in_(batch))):
            found[row.id] = row
    return found


def list_rows(
    conn: sa.Connection,
    where: list[ColumnElement[bool]],
    order: list[ColumnElement[Any]],
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    total = conn.execute(
        sa.select(sa.func.count()).select_from(items).where(*where)
    ).scalar_one()
    rows = conn.execute(
        sa.select(items).where(*where).order_by(*order).limit(limit).offset(offset)
    ).all()
    return list(rows), int(total)


def insert_rows(
    conn: sa.Connection,
    dialect: Dialect,
    rows: Sequence[ItemRow],
    job_id: str | None,
) -> int:
    return dialect.insert_items(conn, rows, job_id)


def existing_ids(conn: sa.Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for batch in _batches(ids):
        found.update(
            conn.execute(sa.select(items.c.id).where(items.c.id.in_(batch))).scalars()
        )
    return found


def existing_keys(conn: sa.Connection, keys: Sequence[int]) -> set[int]:
    found: set[int] = set()
    for batch in _batches(keys):
        found.update(
            conn.execute(sa.select(items.c.pk).where(items.c.pk.in_(batch))).scalars()
        )
    return found


def fetch_states(conn: sa.Connection, ids: Sequence[str]) -> dict[str, ItemState]:
    cols = (items.c.id, items.c.item_type_pk, items.c.data, items.c.version)
    states: dict[str, ItemState] = {}
    for batch in _batches(ids):
        for row in conn.execute(sa.select(*cols).where(items.c.id.in_(batch))):
            states[row[0]] = ItemState(row[0], row[1], row[2], row[3])
    return states


def link_targets(conn: sa.Connection, ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    cols = (items.c.id, items.c.item_type_pk)
    for batch in _batches(ids):
        for row in conn.execute(sa.select(*cols).where(items.c.id.in_(batch))):
            found[row[0]] = row[1]
    return found


def _type_is(type_pk: int) -> ColumnElement[bool]:
    # A literal, not a parameter: SQLite uses a partial index only when the
    # query's condition is textually the index's own.
    return items.c.item_type_pk == sa.literal_column(str(int(type_pk)))


def lookup_by_field(
    conn: sa.Connection,
    dialect: Dialect,
    type_pk: int,
    key: str,
    values: Sequence[Any],
) -> dict[Any, str]:
    """Map values of a (unique) field of one type to the ids holding them."""
    expr = dialect.field_expr(key)
    found: dict[Any, str] = {}
    for batch in _batches(values):
        query = sa.select(expr, items.c.id).where(_type_is(type_pk), expr.in_(batch))
        for value, item_id in conn.execute(query):
            found[value] = item_id
    return found


def find_holder(
    conn: sa.Connection, dialect: Dialect, type_pk: int, key: str, value: Any
) -> tuple[str, str | None] | None:
    """The item (id, created_by_job) that holds a unique value, if any."""
    expr = dialect.field_expr(key)
    row = conn.execute(
        sa.select(items.c.id, items.c.created_by_job).where(
            _type_is(type_pk), expr == value
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def update_rows(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Apply updates; return the positions of rows that broke a unique index.

    The batch runs in one statement; only when it hits a unique index does it
    fall back to one savepoint a row, to tell the offenders from the rest.
    """
    if not rows:
        return []
    stmt = (
        sa.update(items)
        .where(items.c.id == sa.bindparam("b_id"))
        .values(
            data=sa.bindparam("b_data"),
            version=sa.bindparam("b_version"),
            updated_at=sa.bindparam("b_updated_at"),
            updated_by_job=sa.bindparam("b_job"),
        )
    )
    try:
        with conn.begin_nested():
            conn.execute(stmt, list(rows))
        return []
    except sa.exc.IntegrityError:
        pass
    broken: list[int] = []
    for pos, row in enumerate(rows):
        try:
            with conn.begin_nested():
                conn.execute(stmt, row)
        except sa.exc.IntegrityError:
            broken.append(pos)
    return broken


def delete_ids(conn: sa.Connection, ids: Sequence[str]) -> None:
    for batch in _batches(ids):
        conn.execute(sa.delete(items).where(items.c.id.in_(batch)))


def type_range(type_pk: int) -> tuple[int, int]:
    """The row keys of one item type: [low, high)."""
    return int(type_pk) << TYPE_SHIFT, (int(type_pk) + 1) << TYPE_SHIFT


def of_types(type_pks: Sequence[int]) -> ColumnElement[bool]:
    """Items of these types, as range scans over the row keys."""
    ranges = [items.c.pk.between(lo, hi - 1) for lo, hi in map(type_range, type_pks)]
    return ranges[0] if len(ranges) == 1 else sa.or_(*ranges)


def next_keys(conn: sa.Connection, type_pk: int, count: int) -> range:
    """Reserve ``count`` row keys for new items of a type, after the last one.

    Runs inside the write transaction that inserts them, so no other writer
    can take the same keys.
    """
    lo, hi = type_range(type_pk)
    last = conn.execute(
        sa.select(sa.func.max(items.c.pk)).where(items.c.pk >= lo, items.c.pk < hi)
    ).scalar()
    start = lo if last is None else int(last) + 1
    if start + count > hi:
        raise OverflowError(f"item type {type_pk} has no row keys left")
    return range(start, start + count)
