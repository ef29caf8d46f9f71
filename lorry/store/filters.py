"""Compiling item filters (``filter[fields][price][gt]=10``) to SQL.

Every name is checked against the item type's fields before it reaches SQL,
and every value is a bound parameter coerced to the field's type.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from lorry.clock import from_iso
from lorry.errors import ApiError
from lorry.schema.fields import ItemTypeDef
from lorry.schema.patterns import PatternError, compile_pattern
from lorry.schema.validator import canonical_datetime
from lorry.store.dialect import Dialect
from lorry.store.tables import items

__all__ = ["OPERATORS", "compile_filter", "compile_order"]

OPERATORS = frozenset(
    {"eq", "neq", "lt", "lte", "gt", "gte", "in", "not_in", "exists", "matches"}
)
_SYSTEM = {"id": "string", "created_at": "timestamp", "updated_at": "timestamp"}
_ORDERABLE = {"string", "text", "integer", "float", "boolean", "date", "datetime"}
_ORDERABLE |= {"enum", "link", "timestamp"}
_TEXT_TYPES = frozenset({"string", "text", "enum", "link"})


#: Bounds on one query, so that no request builds a statement SQLite refuses.
MAX_CONDITIONS = 50
MAX_VALUES = 1000
MAX_ORDER_TERMS = 10


def _too_many(what: str, limit: int, where: str) -> ApiError:
    return ApiError.one(
        400, "invalid_filter", f"{where}: at most {limit} {what}", parameter=where
    )


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _param(path: str) -> str:
    return f"filter[fields]{path}"


def _split_list(value: Any, where: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        return [value]
    if value.startswith("["):
        try:
            parsed = msgspec.json.decode(value)
        except msgspec.DecodeError:
            raise ApiError.one(
                400, "invalid_filter", f"{where}: not a JSON array", parameter=where
            ) from None
        if not isinstance(parsed, list):
            raise ApiError.one(
                400, "invalid_filter", f"{where}: not a JSON array", parameter=where
            )
        return parsed
    return value.split(",")


def _coerce(value: Any, field_type: str, where: str) -> Any:
    try:
        if field_type == "timestamp":
            return from_iso(str(value))
        if field_type == "integer":
            number = msgspec.convert(value, int, strict=False)
            if not -(2**63) <= number < 2**63:
                raise ValueError("integers are 64-bit")
            return number
        if field_type == "float":
            return msgspec.convert(value, float, strict=False)
        if field_type == "boolean":
            flag = msgspec.convert(value, bool, strict=False)
            return int(flag)
        if field_type == "date":
            return msgspec.convert(value, dt.date, strict=False).isoformat()
        if field_type == "datetime":
            text = str(value)
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                text += "T00:00:00Z"
            return canonical_datetime(msgspec.convert(text, dt.datetime, strict=False))
        if field_type in ("json", "links"):
            raise ApiError.one(
                400,
                "invalid_filter",
                f"{where}: {_a(field_type)} field can only be filtered with exists",
                parameter=where,
            )
        text = str(value)
        if "\x00" in text:
            raise ValueError("text may not contain NUL characters")
        return text
    except (msgspec.ValidationError, ValueError, OverflowError) as exc:
        raise ApiError.one(
            400,
            "invalid_filter",
            f"{where}: {value!r} is not a valid {field_type} value ({exc})",
            parameter=where,
        ) from None


def _column(
    key: str, type_def: ItemTypeDef | None, dialect: Dialect, where: str
) -> tuple[ColumnElement[Any], str]:
    if key in _SYSTEM:
        return items.c[key], _SYSTEM[key]
    if type_def is None:
        doing = "ordering by" if where == "order_by" else "filtering on"
        raise ApiError.one(
            400,
            "invalid_filter",
            f"{where}: {doing} field {key!r} needs exactly one filter[type]",
            parameter=where,
        )
    f = type_def.field(key)
    if f is None:
        raise ApiError.one(
            400,
            "invalid_filter",
            f"{where}: {type_def.api_key!r} has no field {key!r}",
            parameter=where,
        )
    return dialect.field_expr(key), f.field_type


def _condition(
    col: ColumnElement[Any],
    field_type: str,
    op: str,
    value: Any,
    where: str,
    dialect: Dialect,
) -> ColumnElement[bool]:
    if op == "exists":
        flag = _coerce(value, "boolean", where)
        return col.is_not(None) if flag else col.is_(None)
    if op == "matches":
        if field_type not in _TEXT_TYPES:
            raise ApiError.one(
                400,
                "invalid_filter",
                f"{where}: matches works on text fields, not on {_a(field_type)} field",
                parameter=where,
            )
        pattern = str(value)
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            raise ApiError.one(
                400, "invalid_filter", f"{where}: {exc}", parameter=where
            ) from None
        return dialect.matches(col, pattern)
    if op in ("in", "not_in"):
        listed = _split_list(value, where)
        if len(listed) > MAX_VALUES:
            raise _too_many("values", MAX_VALUES, where)
        values = [_coerce(v, field_type, where) for v in listed]
        return col.in_(values) if op == "in" else sa.not_(col.in_(values))
    v = _coerce(value, field_type, where)
    ops: dict[str, ColumnElement[bool]] = {
        "eq": col == v,
        "neq": col != v,
        "lt": col < v,
        "lte": col <= v,
        "gt": col > v,
        "gte": col >= v,
    }
    return ops[op]


def compile_filter(
    fields: dict[str, Any], type_def: ItemTypeDef | None, dialect: Dialect
) -> list[ColumnElement[bool]]:
    """Return the WHERE conditions for ``filter[fields]``."""
    conditions: list[ColumnElement[bool]] = []
    count = sum(len(ops) if isinstance(ops, dict) else 1 for ops in fields.values())
    if count > MAX_CONDITIONS:
        raise _too_many("conditions", MAX_CONDITIONS, "filter[fields]")
    for key, ops in fields.items():
        where = _param(f"[{key}]")
        col, field_type = _column(key, type_def, dialect, where)
        if not isinstance(ops, dict):
            ops = {"eq": ops}
        for op, value in ops.items():
            op_where = _param(f"[{key}][{op}]")
            if op not in OPERATORS:
                allowed = ", ".join(sorted(OPERATORS))
                raise ApiError.one(
                    400,
                    "invalid_filter",
                    f"{op_where}: unknown operator {op!r}; use one of {allowed}",
                    parameter=op_where,
                )
            conditions.append(_condition(col, field_type, op, value, op_where, dialect))
    return conditions


def compile_order(
    order_by: str | None, type_def: ItemTypeDef | None, dialect: Dialect
) -> list[ColumnElement[Any]]:
    clauses: list[ColumnElement[Any]] = []
    parts = (order_by or "").split(",")
    if len(parts) > MAX_ORDER_TERMS:
        raise _too_many("terms", MAX_ORDER_TERMS, "order_by")
    for part in parts:
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        key = part.lstrip("-+")
        col, field_type = _column(key, type_def, dialect, "order_by")
        if field_type not in _ORDERABLE:
            raise ApiError.one(
                400,
                "invalid_order",
                f"order_by: cannot order by {_a(field_type)} field",
                parameter="order_by",
            )
        clauses.append(col.desc() if desc else col.asc())
    # Row keys follow creation order within a type: a stable tie-break that
    # the table's own order serves without sorting.
    clauses.append(items.c.pk.asc())
    return clauses
