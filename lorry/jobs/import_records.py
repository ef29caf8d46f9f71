"""Turning the records of an import file into items of an item type.

A record is a JSON object: a CSV row as ``{column: cell}`` (cells are text,
or null when empty), or an element of a JSON file as it came. Each column
goes to a field, and CSV text is read as the field's type: numbers with the
job's decimal mark, JSON text for json fields, lists for links fields. What
stays text goes to the validator, which reads it by the field type too, so a
string field keeps "007" and an integer field turns "7" into 7.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from lorry.schema.fields import ItemTypeDef
from lorry.schema.validator import ItemFailure

__all__ = ["Converted", "RecordPlan", "snake_case"]

_SEPARATORS = re.compile(r"[\s.\-]+")
_ACRONYM_END = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: Columns that are not fields: what an export writes beside them.
_SYSTEM = frozenset({"id", "item_type", "created_at", "updated_at", "meta"})
#: Text values of these field types mean "no value" when empty.
_TEXT_TYPES = frozenset({"string", "text"})
#: Field types whose CSV text the validator reads as this plan would: for
#: any cell it takes, the plan's reading gives the same value, and a cell
#: the plan reads differently (blank: no value) it refuses.
_AS_WRITTEN = frozenset(
    {"string", "text", "integer", "float", "boolean", "enum", "date", "datetime"}
)
_SPACES = ("\u00a0", "\u202f", " ")


def snake_case(name: str) -> str:
    """``movieId`` -> ``movie_id``, ``ProductID`` -> ``product_id``,
    ``Unit Price`` -> ``unit_price``."""
    name = _SEPARATORS.sub("_", name.strip())
    name = _ACRONYM_END.sub("_", name)
    return _WORD_START.sub("_", name).lower()


class _Unreadable(Exception):
    """A cell that cannot be read as its field's type."""


def _json_text(text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise _Unreadable(f"is not valid JSON: {exc}") from None


def _links_text(text: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        return _json_text(text)
    return [part.strip() for part in text.split(",") if part.strip()]


#: A column's step: (column, target, how to read its value or None as is)
_Step = tuple[str, str, "Callable[[Any], Any] | None"]
_SKIP = object()


def _stamp_or_skip(value: Any) -> Any:
    # The store stamps these itself when the file leaves them empty.
    return _SKIP if value in (None, "") else value


def _empty_only(type_key: str) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if value in (None, ""):
            return _SKIP
        raise _Unreadable(
            f"has a value, but {type_key!r} has no such field (it is a field "
            "of another item type)"
        )

    return read


def _same(value: Any) -> Any:
    return value


@dataclass(slots=True)
class Converted:
    item: dict[str, Any]
    #: The id the record gave, kept by the import (an export read back).
    item_id: str | None


@dataclass(slots=True)
class _TypePlan:
    type_def: ItemTypeDef
    #: column -> field api_key, or None for a column that goes nowhere
    columns: dict[str, str | None] = field(default_factory=dict)
    field_types: dict[str, str] = field(default_factory=dict)
    #: The steps for records with these columns, or why they all fail
    programs: dict[tuple[str, ...], list[_Step] | ItemFailure] = field(
        default_factory=dict
    )


class RecordPlan:
    """How the records of one import job become items."""

    def __init__(self, types: list[ItemTypeDef], options: dict[str, Any]) -> None:
        self._types = {t.api_key: t for t in types}
        self._all_fields = {f.api_key for t in types for f in t.fields}
        self._plans: dict[str, _TypePlan] = {}
        self.default_type: str | None = options.get("type")
        self.mapping: dict[str, str] = options.get("mapping") or {}
        self.from_text = options.get("format") == "csv"
        self.reject_unknown = options.get("unknown_columns") == "reject"
        self._number = self._number_reader(
            options.get("decimal", "."), options.get("thousands", "")
        )
        #: Columns seen that went to no field, in order of appearance.
        self.unknown: list[str] = []
        self._unknown_seen: set[str] = set()

    @staticmethod
    def _number_reader(decimal: str, thousands: str) -> Callable[[str], str] | None:
        if decimal == "." and not thousands:
            return None
        drop = _SPACES if thousands == " " else (thousands,) if thousands else ()

        def read(text: str) -> str:
            text = text.strip()
            for mark in drop:
                text = text.replace(mark, "")
            return text.replace(",", ".") if decimal == "," else text

        return read

    def _plan(self, type_key: str) -> _TypePlan | None:
        plan = self._plans.get(type_key)
        if plan is None:
            type_def = self._types.get(type_key)
            if type_def is None:
                return None
            plan = _TypePlan(
                type_def, field_types={f.api_key: f.field_type for f in type_def.fields}
            )
            self._plans[type_key] = plan
        return plan

    def _target(
        self, plan: _TypePlan, column: str, typed_rows: bool = False
    ) -> str | None:
        found = plan.columns.get(column, "")
        if found != "":
            return found
        target: str | None
        if column in self.mapping:
            target = self.mapping[column] or None
        elif column in plan.field_types or column in _SYSTEM:
            target = column
        else:
            snake = snake_case(column)
            target = snake if snake in plan.field_types else None
            # In a file of several types (an export with its linked items),
            # another type's column is no stranger.
            elsewhere = typed_rows and self._elsewhere(column)
            if target is None and not elsewhere and column not in self._unknown_seen:
                self._unknown_seen.add(column)
                self.unknown.append(column)
        plan.columns[column] = target
        return target

    def item_prefix(self, columns: tuple[str, ...]) -> bytes | None:
        """For CSV records with these columns that are already items but for
        their type, the bytes that make one of a record: ``{"item_type":T,``
        to put in place of its ``{``. None when any column needs reading by
        this plan first (a rename, a system column, a number format, a cell
        that is JSON or a list, an enum that holds a blank value)."""
        if not self.from_text or self._number is not None or self.default_type is None:
            return None
        plan = self._plan(self.default_type)
        if plan is None or "item_type" in columns or "id" in columns:
            return None
        steps = plan.programs.get(columns)
        if steps is None:
            steps = plan.programs[columns] = self._compile(plan, columns)
        if isinstance(steps, ItemFailure) or len(steps) != len(columns):
            return None
        fields = {f.api_key: f for f in plan.type_def.fields}
        for column, target, _read in steps:
            if target != column:
                return None
            if target in ("created_at", "updated_at"):
                continue
            field = fields[target]
            if field.field_type not in _AS_WRITTEN:
                return None
            blank = [v for v in field.validators.enum or () if not v.strip()]
            if blank:
                return None
        return b'{"item_type":' + msgspec.json.encode(self.default_type) + b","

    def _elsewhere(self, column: str) -> bool:
        """Whether the column names a field of any item type."""
        return column in self._all_fields or snake_case(column) in self._all_fields

    def field_columns(self) -> dict[str, str]:
        """The column each field was read from, for error reports."""
        out: dict[str, str] = {}
        for plan in self._plans.values():
            for column, target in plan.columns.items():
                if target is not None:
                    out.setdefault(target, column)
        return out

    def convert(self, record: dict[str, Any]) -> Converted | ItemFailure:
        type_key = record.get("item_type") or self.default_type
        if type_key is None:
            return ItemFailure(
                "invalid_value",
                "the record has no item_type, and the import names no type",
                "item_type",
            )
        if not isinstance(type_key, str):
            return ItemFailure(
                "invalid_type", "item_type must be a string", "item_type"
            )
        plan = self._plan(type_key)
        if plan is None:
            return ItemFailure(
                "unknown_item_type", f"no item type {type_key!r}", "item_type"
            )

        steps = plan.programs.get(keys := tuple(record))
        if steps is None:
            steps = plan.programs[keys] = self._compile(plan, keys)
        if isinstance(steps, ItemFailure):
            return steps

        item: dict[str, Any] = {"item_type": type_key}
        item_id: str | None = None
        for column, target, read in steps:
            value = record[column]
            if read is None:
                item[target] = value
                continue
            try:
                value = read(value)
            except _Unreadable as exc:
                return ItemFailure("invalid_value", f"{target} {exc}", target)
            if value is _SKIP:
                continue
            if target == "id":
                if value is not None and not isinstance(value, str):
                    return ItemFailure("invalid_type", "id must be a string", "id")
                item_id = value or None
                continue
            item[target] = value
        return Converted(item, item_id)

    def _compile(
        self, plan: _TypePlan, columns: tuple[str, ...]
    ) -> list[_Step] | ItemFailure:
        """What to do with each column of records that have these columns,
        worked out once for all such records (every row of a CSV file)."""
        steps: list[_Step] = []
        source: dict[str, str] = {}
        typed_rows = "item_type" in columns
        for column in columns:
            target = self._target(plan, column, typed_rows)
            if target is not None and target in source:
                return ItemFailure(
                    "ambiguous_columns",
                    f"columns {source[target]!r} and {column!r} both go to "
                    f"{target!r}; map one of them elsewhere (mapping[COLUMN]=FIELD) "
                    "or leave it out (mapping[COLUMN]=)",
                    target,
                )
            if target is not None:
                source[target] = column
            if target is None and typed_rows and self._elsewhere(column):
                steps.append((column, column, _empty_only(plan.type_def.api_key)))
                continue
            if target is None:
                if self.reject_unknown and column not in self.mapping:
                    return ItemFailure(
                        "unknown_field",
                        f"{plan.type_def.api_key!r} has no field for column {column!r}",
                        column,
                    )
                continue
            if target in ("item_type", "meta"):
                continue
            if target in ("created_at", "updated_at"):
                steps.append((column, target, _stamp_or_skip))
            elif target == "id":
                steps.append((column, target, _same))
            else:
                steps.append((column, target, self._reader(plan, target)))
        return steps

    def _reader(self, plan: _TypePlan, target: str) -> Callable[[Any], Any] | None:
        field_type = plan.field_types.get(target)
        if self.from_text and field_type in _TEXT_TYPES:
            return None  # CSV cells are text or null already

        def read(value: Any) -> Any:
            return self._value(field_type, value)

        return read

    def _value(self, field_type: str | None, value: Any) -> Any:
        if not isinstance(value, str):
            # A JSON number for a text field is read as its text: files
            # written by other systems often give codes and ids as numbers.
            number = isinstance(value, int | float) and not isinstance(value, bool)
            return str(value) if number and field_type in _TEXT_TYPES else value
        if field_type in ("integer", "float"):
            if self._number is not None:
                value = self._number(value)
            return value if value.strip() or not self.from_text else None
        if not self.from_text or field_type in _TEXT_TYPES or field_type is None:
            return value
        # CSV text of the other types: an empty cell holds no value.
        if not value.strip():
            return None
        if field_type == "json":
            return _json_text(value)
        if field_type == "links":
            return _links_text(value)
        return value
