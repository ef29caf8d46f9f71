"""Turning the records of an input file into items of one item type."""

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

__all__ = ["ItemBuilder", "coerce", "snake_case"]

_SEPARATORS = re.compile(r"[\s.\-]+")
_ACRONYM_END = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def snake_case(name: str) -> str:
    """``movieId`` -> ``movie_id``, ``ProductID`` -> ``product_id``,
    ``Unit Price`` -> ``unit_price``."""
    name = _SEPARATORS.sub("_", name.strip())
    name = _ACRONYM_END.sub("_", name)
    return _WORD_START.sub("_", name).lower()


def _integer(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        number = float(text)
        return int(number) if number.is_integer() else text


def _float(text: str) -> float | str:
    number = float(text)
    # msgspec writes NaN and infinity as null, which would turn a bad value
    # into a missing one; the server rejects the text instead.
    return number if math.isfinite(number) else text


def _boolean(text: str) -> bool | str:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return text


def _links(text: str) -> list[Any]:
    text = text.strip()
    if text.startswith("["):
        return list(msgspec.json.decode(text, type=list[Any]))
    return [part.strip() for part in text.split(",") if part.strip()]


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "integer": _integer,
    "float": _float,
    "boolean": _boolean,
    "json": msgspec.json.decode,
}

Converter = Callable[[str], Any]


def _converter(field_type: str | None) -> Converter | None:
    """The conversion of CSV text to a field type's JSON type, if it has one.

    Text that does not convert is kept, so that the server reports the bad
    value with the item's index instead of the import stopping.
    """
    convert = _CONVERTERS.get(field_type or "")
    if convert is None:
        return None

    def safe(text: str) -> Any:
        try:
            return convert(text)
        except (ValueError, msgspec.DecodeError):
            return text

    return safe


def _links_converter(value_type: str | None) -> Converter:
    convert = _converter(value_type)

    def split(text: str) -> Any:
        try:
            values = _links(text)
        except (ValueError, msgspec.DecodeError):
            return text
        if convert is None:
            return values
        return [convert(v) if isinstance(v, str) else v for v in values]

    return split


def coerce(text: str, field_type: str | None) -> Any:
    """Convert a CSV cell to the JSON type of a field, where it clearly is one."""
    convert = _converter(field_type)
    return text if convert is None else convert(text)


class ItemBuilder:
    """Maps a record's columns to the fields of an item type.

    A column goes to the field ``overrides`` names; else to the field of the
    same api_key; else to the field named like its snake_case. Other columns
    are dropped, and ``warn`` hears of them once. With ``coerce_text``, text
    values are converted to their field's type (CSV cells are all text); a
    link field given through ``link_by`` converts to ``link_value_types``.
    """

    def __init__(
        self,
        item_type: str,
        fields: Sequence[Mapping[str, Any]],
        *,
        overrides: Mapping[str, str] | None = None,
        link_value_types: Mapping[str, str | None] | None = None,
        coerce_text: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.item_type = item_type
        self._field_types: dict[str, str | None] = {
            str(field["api_key"]): field.get("field_type") for field in fields
        }
        self._overrides = dict(overrides or {})
        self._link_value_types = dict(link_value_types or {})
        self._coerce_text = coerce_text
        self._warn = warn
        #: column -> (field, converter), or None for a dropped column.
        self._columns: dict[str, tuple[str, Converter | None] | None] = {}

    def field_for(self, column: str) -> str | None:
        if column in self._overrides:
            return self._overrides[column]
        if column in self._field_types:
            return column
        snake = snake_case(column)
        return snake if snake in self._field_types else None

    def resolve(self, columns: Iterable[str]) -> None:
        """Decide where new columns go, warning once about the dropped ones."""
        columns = list(columns)
        if not self._columns and self._warn is not None:
            missing = [c for c in self._overrides if c not in columns]
            if missing:
                self._warn(f"--map names columns the file does not have: {missing}")
        dropped = []
        for column in columns:
            if column in self._columns:
                continue
            field = self.field_for(column)
            if field is None:
                self._columns[column] = None
                # Every item gets its item_type anyway; the column is no news.
                if column != "item_type":
                    dropped.append(column)
            else:
                self._columns[column] = (field, self._field_converter(field))
        if dropped and self._warn is not None:
            names = ", ".join(dropped)
            self._warn(
                f"ignoring columns that {self.item_type!r} has no field for: {names}"
            )

    def _field_converter(self, field: str) -> Converter | None:
        if not self._coerce_text:
            return None
        field_type = self._field_types.get(field)
        value_type = self._link_value_types.get(field)
        if field_type == "links":
            return _links_converter(value_type)
        if field_type == "link":
            return _converter(value_type)
        return _converter(field_type)

    def build(self, record: Any) -> Any:
        """The item for one record; anything but an object passes unchanged,
        for the server to report as an invalid item."""
        if not isinstance(record, dict):
            return record
        item: dict[str, Any] = {"item_type": self.item_type}
        columns = self._columns
        for column, value in record.items():
            if column not in columns:
                self.resolve(record)
            target = columns[column]
            if target is None:
                continue
            field, convert = target
            if convert is not None and isinstance(value, str):
                value = convert(value)
            item[field] = value
        return item
