"""Checking items against their item types' fields, locally, before a job.

This mirrors the server's checks of each value on its own (types, required
fields, lengths, ranges, patterns, enum values), with the same lenient
reading of text that the server gives CSV ("12", "1.5", "yes", a date alone
in a datetime). It cannot see the store: whether a unique value is taken, or
a link points at an item that exists, only the server can tell, as a
``dry_run`` job does. A pattern is checked with Python's ``re``, which reads
a few patterns otherwise than the server's RE2.
"""

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from lorry.client._models import ItemType

__all__ = ["ItemIssue", "check_items"]

_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_INT64 = (-(2**63), 2**63 - 1)
#: Keys an item may carry besides its fields.
_SYSTEM_KEYS = frozenset({"id", "item_type", "created_at", "updated_at"})


class ItemIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem of one item, found before sending it.

    ``code`` is the code the server's job would report: ``invalid_item``,
    ``unknown_item_type``, ``unknown_field``, ``required``, ``invalid_type``
    or ``invalid_value``.
    """

    #: The item's position in the list checked (from 0).
    index: int
    field: str | None
    code: str
    message: str


def check_items(
    items: Iterable[Any], types: Iterable[ItemType], item_type: str | None
) -> list[ItemIssue]:
    """Every problem of every item; see :meth:`ItemTypes.validate`."""
    fields = {t.attributes.api_key: t.attributes.fields for t in types}
    issues: list[ItemIssue] = []
    for index, item in enumerate(items):
        issues.extend(
            ItemIssue(index=index, field=key, code=code, message=message)
            for key, code, message in _item_issues(item, fields, item_type)
        )
    return issues


Problem = tuple[str | None, str, str]


def _item_issues(
    item: Any, types: Mapping[str, list[dict[str, Any]]], default_type: str | None
) -> list[Problem]:
    if not isinstance(item, Mapping):
        return [(None, "invalid_item", "an item must be a JSON object")]
    type_key = item.get("item_type", default_type)
    if type_key is None:
        return [("item_type", "unknown_item_type", "item_type is missing")]
    if default_type is not None and type_key != default_type:
        return [("item_type", "unknown_item_type", f"expected {default_type!r}")]
    if type_key not in types:
        return [("item_type", "unknown_item_type", f"no item type {type_key!r}")]
    defs = {f["api_key"]: f for f in types[type_key]}
    out: list[Problem] = [
        (key, "unknown_field", f"{key} is not a field of this type")
        for key in item
        if key not in defs and key not in _SYSTEM_KEYS
    ]
    for stamp in ("created_at", "updated_at"):
        if stamp in item:
            out.extend(_problems(stamp, "datetime", {}, item[stamp], stamp=True))
    for key, definition in defs.items():
        value = item.get(key)
        if value is None:
            if definition.get("required") and definition.get("default") is None:
                out.append((key, "required", f"{key} is required"))
            continue
        validators = definition.get("validators") or {}
        out.extend(_problems(key, definition["field_type"], validators, value))
    return out


def _problems(
    key: str, kind: str, rules: Mapping[str, Any], value: Any, stamp: bool = False
) -> list[Problem]:
    if value is None and stamp:
        return [(key, "invalid_value", f"{key} may not be null; leave it out")]
    read = _READERS.get(kind)
    if read is None:  # json: anything goes; link(s): only the store can tell
        return _links(key, rules, value) if kind == "links" else []
    try:
        parsed = read(value)
    except (TypeError, ValueError, OverflowError):
        return [(key, "invalid_type", f"{key}: expected {kind}, got {value!r}")]
    return _rules(key, kind, rules, parsed)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value)
    raise TypeError


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError
    return float(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError


def _date(value: Any) -> dt.date:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise TypeError
    return dt.date.fromisoformat(value)


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if not isinstance(value, str):
        raise TypeError
    text = value.strip()
    if _DATE_RE.match(text):
        text += "T00:00:00"
    return dt.datetime.fromisoformat(text.replace("z", "Z"))


_READERS: dict[str, Any] = {
    "string": _string,
    "text": _string,
    "enum": _string,
    "integer": _integer,
    "float": _float,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
}


def _rules(key: str, kind: str, rules: Mapping[str, Any], value: Any) -> list[Problem]:
    def bad(text: str) -> list[Problem]:
        return [(key, "invalid_value", f"{key}: {text}")]

    enum = rules.get("enum")
    if enum and kind in ("enum", "string", "text"):
        return [] if value in enum else bad(f"{value!r} is not one of {enum}")
    if kind in ("string", "text"):
        length = rules.get("length") or {}
        if length.get("min") is not None and len(value) < length["min"]:
            return bad(f"shorter than {length['min']} characters")
        if length.get("max") is not None and len(value) > length["max"]:
            return bad(f"longer than {length['max']} characters")
        if "\x00" in value:
            return bad("text may not contain NUL characters")
        pattern = rules.get("pattern")
        if pattern is not None and re.search(pattern, value) is None:
            return bad(f"does not match {pattern}")
    if kind == "float" and not math.isfinite(value):
        return bad(f"{value} is not a finite number")
    if kind == "integer" and not _INT64[0] <= value <= _INT64[1]:
        return bad("out of the 64-bit range")
    if kind in ("integer", "float"):
        span = rules.get("range") or {}
        if span.get("min") is not None and value < span["min"]:
            return bad(f"{value} is below {span['min']}")
        if span.get("max") is not None and value > span["max"]:
            return bad(f"{value} is above {span['max']}")
    return []


def _links(key: str, rules: Mapping[str, Any], value: Any) -> list[Problem]:
    if not isinstance(value, list):
        return [(key, "invalid_type", f"{key}: expected a list of ids")]
    length = rules.get("length") or {}
    if length.get("min") is not None and len(value) < length["min"]:
        return [(key, "invalid_value", f"{key}: fewer than {length['min']} links")]
    if length.get("max") is not None and len(value) > length["max"]:
        return [(key, "invalid_value", f"{key}: more than {length['max']} links")]
    return []
