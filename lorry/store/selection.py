"""Which items a request means: ``filter`` (type, ids, fields) and ``order_by``.

One reading for every place that selects items: the items list, export jobs,
migration jobs. A filter arrives as query parameters (``filter[type]=a,b``)
or as a JSON body (``{"type": ["a", "b"]}``); both reach here as nested
dicts, and errors name the parameter either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from lorry.errors import ApiError
from lorry.ids import is_id
from lorry.schema.fields import ItemTypeDef
from lorry.store import item_types as type_store
from lorry.store import items as item_store
from lorry.store.dialect import Dialect
from lorry.store.filters import compile_filter, compile_order
from lorry.store.tables import items

__all__ = ["MAX_IDS", "Selection", "select_items"]

MAX_IDS = 500


@dataclass(slots=True)
class Selection:
    where: list[ColumnElement[bool]]
    order: list[Any]
    #: The one item type selected, if the filter names exactly one.
    type_def: ItemTypeDef | None
    #: Every item type selected (all of them when the filter names none).
    types: list[ItemTypeDef]


def _values(value: Any, name: str, most: int) -> list[str]:
    if isinstance(value, str):
        values = [v for v in value.split(",") if v]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        values = [v for v in value if v]
    else:
        values = []
    if not values or len(values) > most:
        raise ApiError.one(
            400,
            "invalid_filter",
            f"{name} takes 1 to {most} values (a list or comma-separated)",
            parameter=name,
        )
    return values


def select_items(
    conn: sa.Connection,
    dialect: Dialect,
    filters: Any,
    order_by: Any = None,
    *,
    max_ids: int = MAX_IDS,
) -> Selection:
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise ApiError.one(400, "invalid_filter", "use filter[...]", parameter="filter")
    unknown = set(filters) - {"type", "ids", "fields"}
    if unknown:
        name = sorted(unknown)[0]
        raise ApiError.one(
            400,
            "invalid_filter",
            f"unknown filter {name!r}; use type, ids or fields",
            parameter=f"filter[{name}]",
        )
    all_types = {t.api_key: t for t in type_store.load_all(conn)}
    where: list[ColumnElement[bool]] = []
    type_def = None
    chosen = list(all_types.values())
    if "type" in filters:
        keys = sorted(set(_values(filters["type"], "filter[type]", 100)))
        missing = [k for k in keys if k not in all_types]
        if missing:
            raise ApiError.one(
                400,
                "invalid_filter",
                f"filter[type]: no item type {missing[0]!r}",
                parameter="filter[type]",
            )
        chosen = [all_types[k] for k in keys]
        where.append(item_store.of_types([t.pk for t in chosen]))
        if len(keys) == 1:
            type_def = chosen[0]
    if "ids" in filters:
        ids = _values(filters["ids"], "filter[ids]", max_ids)
        where.append(items.c.id.in_([i for i in ids if is_id(i)]))
    fields = filters.get("fields", {})
    if not isinstance(fields, dict):
        raise ApiError.one(
            400,
            "invalid_filter",
            "use filter[fields][FIELD][OP]=VALUE",
            parameter="filter[fields]",
        )
    where.extend(compile_filter(fields, type_def, dialect))
    order = compile_order(
        order_by if isinstance(order_by, str) else None, type_def, dialect
    )
    return Selection(where, order, type_def, chosen)
