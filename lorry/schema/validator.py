"""Compiling item types into fast validators.

Each item type becomes a msgspec Struct whose field annotations carry the
field's constraints, tagged by ``item_type``; a job's items are decoded from
their raw JSON straight into those structs in C, in msgspec's lax mode, which
coerces the strings that CSV gives ("12", "1.5", "true", "2020-01-01",
unix seconds). Python only touches what msgspec cannot check: NaN, naive
datetimes, lenient booleans on the slow path, and links, which need the store.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import keyword
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

import msgspec

from lorry.ids import ID_PATTERN
from lorry.schema.fields import FieldDef, ItemTypeDef
from lorry.schema.patterns import compile_pattern

__all__ = [
    "MAX_JSON_DEPTH",
    "CompiledType",
    "ItemFailure",
    "LinkField",
    "Valid",
    "Validator",
    "canonical_datetime",
]

_UTC = dt.UTC
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
_PATH_RE = re.compile(r" - at `\$(?:\.([A-Za-z0-9_]+)|\[\d+\])?[^`]*`$")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Nesting allowed inside a json field's value (SQLite's JSON functions,
#: which the indexes run on every row, refuse documents nested past 1000).
MAX_JSON_DEPTH = 64
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MISSING_RE = re.compile(r"Object missing required field `([^`]+)`")
_UNKNOWN_RE = re.compile(r"Object contains unknown field `([^`]+)`")


class ItemFailure(msgspec.Struct, frozen=True):
    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class LinkField:
    attr: str
    key: str
    many: bool
    target_keys: frozenset[str]
    #: With link_by, the unique field of the target type the input names.
    by: str | None = None


def _unset_finish(obj: Any) -> Any:
    raise AssertionError("compile_type sets finish")


@dataclass(slots=True)
class CompiledType:
    type_def: ItemTypeDef
    struct: type[msgspec.Struct]
    float_attrs: tuple[str, ...]
    datetime_attrs: tuple[str, ...]
    bool_keys: frozenset[str]
    datetime_keys: frozenset[str]
    links: tuple[LinkField, ...]
    unique_keys: tuple[str, ...]
    field_types: dict[str, str] = field(default_factory=dict)
    #: string and text fields, with their pattern if they have one
    text_attrs: tuple[tuple[str, str | None], ...] = ()
    json_attrs: tuple[str, ...] = ()
    #: The per-type second pass, generated (see _make_finisher).
    finish: Callable[[Any], Valid | ItemFailure] = field(default=_unset_finish)


@dataclass(slots=True)
class Valid:
    compiled: CompiledType
    #: None when the item was validated in another process and only its JSON
    #: travelled; materialize() rebuilds it from ``data`` when needed.
    obj: msgspec.Struct | None
    created_at: int | None
    updated_at: int | None
    #: The item's JSON, when nothing later can change it (no link_by links).
    data: str | None = None

    def materialize(self) -> msgspec.Struct:
        if self.obj is None:
            assert self.data is not None
            self.obj = msgspec.json.decode(self.data, type=self.compiled.struct)
        return self.obj


def _attr(key: str) -> str:
    # Field keys are identifiers but may be Python keywords ("class", "from").
    return f"f_{key}" if keyword.iskeyword(key) or key.startswith("f_") else key


def _annotation(f: FieldDef, link_by: str | None) -> Any:
    v = f.validators
    meta: dict[str, Any] = {}
    if f.field_type in ("string", "text"):
        if v.length is not None:
            if v.length.min is not None:
                meta["min_length"] = v.length.min
            if v.length.max is not None:
                meta["max_length"] = v.length.max
        # Patterns are checked by RE2 in the finisher, not by msgspec's re.
        base: Any = str
        if v.enum:
            base = Literal[tuple(v.enum)]
            meta.pop("min_length", None)
            meta.pop("max_length", None)
    elif f.field_type == "integer":
        # Stored integers are 64-bit in SQLite and PostgreSQL alike.
        base = int
        lo, hi = _INT64_MIN, _INT64_MAX
        if v.range is not None and v.range.min is not None:
            lo = max(lo, math.ceil(v.range.min))
        if v.range is not None and v.range.max is not None:
            hi = min(hi, math.floor(v.range.max))
        meta["ge"], meta["le"] = lo, hi
    elif f.field_type == "float":
        base = float
        if v.range is not None:
            if v.range.min is not None:
                meta["ge"] = v.range.min
            if v.range.max is not None:
                meta["le"] = v.range.max
    elif f.field_type == "boolean":
        base = bool
    elif f.field_type == "date":
        base = dt.date
    elif f.field_type == "datetime":
        base = dt.datetime
    elif f.field_type == "json":
        base = Any
    elif f.field_type == "enum":
        base = Literal[tuple(v.enum or ())]
    elif f.field_type == "link":
        base = (
            Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
            if link_by is None
            else Union[str, int, float]  # noqa: UP007 - a runtime type object
        )
    elif f.field_type == "links":
        element: Any = (
            Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
            if link_by is None
            else Union[str, int, float]  # noqa: UP007
        )
        list_meta: dict[str, Any] = {}
        if v.length is not None:
            if v.length.min is not None:
                list_meta["min_length"] = v.length.min
            if v.length.max is not None:
                list_meta["max_length"] = v.length.max
        base = (
            Annotated[list[element], msgspec.Meta(**list_meta)]
            if list_meta
            else list[element]
        )
    else:  # pragma: no cover - FieldDef checks keep other types out
        raise ValueError(f"unknown field type {f.field_type!r}")
    if meta:
        base = Annotated[base, msgspec.Meta(**meta)]
    return base


def compile_type(type_def: ItemTypeDef, link_by: dict[str, str]) -> CompiledType:
    spec: list[tuple[str, Any, Any]] = []
    floats: list[str] = []
    datetimes: list[str] = []
    bools: list[str] = []
    datetime_keys: list[str] = []
    links: list[LinkField] = []
    texts: list[tuple[str, str | None]] = []
    jsons: list[str] = []
    for f in type_def.fields:
        by = link_by.get(f.api_key) if f.field_type in ("link", "links") else None
        ann = _annotation(f, by)
        name = _attr(f.api_key)
        # A default is stored like a given value: converted to the field's
        # type here, so that "5" in an integer field's definition stores 5.
        default = (
            None if f.default is None else msgspec.convert(f.default, ann, strict=False)
        )
        if f.required and default is None:
            spec.append((name, ann, msgspec.field(name=f.api_key)))
        elif isinstance(default, (dict, list)):
            spec.append((name, ann | None, msgspec.field(
                default_factory=functools.partial(copy.deepcopy, default),
                name=f.api_key,
            )))  # fmt: skip
        else:
            spec.append(
                (name, ann | None, msgspec.field(default=default, name=f.api_key))
            )
        if f.field_type in ("string", "text") and not f.validators.enum:
            texts.append((name, f.validators.pattern))
        elif f.field_type == "json":
            jsons.append(name)
        elif f.field_type == "float":
            floats.append(name)
        elif f.field_type == "datetime":
            datetimes.append(name)
            datetime_keys.append(f.api_key)
        elif f.field_type == "boolean":
            bools.append(f.api_key)
        elif f.field_type in ("link", "links"):
            targets = frozenset(f.validators.item_types or ())
            links.append(
                LinkField(name, f.api_key, f.field_type == "links", targets, by)
            )
    # Items may set their own timestamps (an import keeping a source's dates);
    # UNSET keeps them out of the stored JSON once read.
    for stamp in ("created_at", "updated_at"):
        spec.append(
            (
                f"_lorry_{stamp}",
                dt.datetime | msgspec.UnsetType,
                msgspec.field(default=msgspec.UNSET, name=stamp),
            )
        )
    struct = msgspec.defstruct(
        f"ItemType_{type_def.api_key}",
        spec,
        tag_field="item_type",
        tag=type_def.api_key,
        forbid_unknown_fields=True,
        kw_only=True,
        # Items hold no cycles; untracked structs spare the collector from
        # walking every item of a chunk, which otherwise halves validation.
        gc=False,
    )
    compiled = CompiledType(
        type_def=type_def,
        struct=struct,
        float_attrs=tuple(floats),
        datetime_attrs=tuple(datetimes),
        bool_keys=frozenset(bools),
        datetime_keys=frozenset(datetime_keys),
        text_attrs=tuple(texts),
        json_attrs=tuple(jsons),
        links=tuple(links),
        unique_keys=tuple(f.api_key for f in type_def.fields if f.unique),
        field_types={f.api_key: f.field_type for f in type_def.fields},
    )
    compiled.finish = _make_finisher(compiled)
    return compiled


_ONE_US = dt.timedelta(microseconds=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_encode = msgspec.json.Encoder().encode


def _stamp(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    return (value - _EPOCH) // _ONE_US


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            child
            for v in level
            if isinstance(v, (dict, list))
            for child in (v.values() if isinstance(v, dict) else v)
        ]
        if not level:
            return False
    return any(isinstance(v, (dict, list)) for v in level)


def _make_finisher(compiled: CompiledType) -> Callable[[Any], Valid | ItemFailure]:
    """Generate the Python half of a type's validator, without loops or lookups.

    This runs once per item on the hot path; straight-line code per field is
    several times faster than a loop over field descriptions. Attribute names
    are validated field keys (identifiers), so splicing them is safe.
    """
    lines = ["def finish(obj):"]
    patterns: dict[str, Any] = {}
    for n, (attr, pattern) in enumerate(compiled.text_attrs):
        key = attr.removeprefix("f_")
        # SQLite's JSON functions end a string at NUL, so indexes and filters
        # would see another value than the one stored.
        lines += [
            f"    x = obj.{attr}",
            "    if x is not None:",
            "        if '\\x00' in x:",
            f"            return ItemFailure('invalid_value', '{key}: text may not "
            f"contain NUL characters', {key!r})",
        ]
        if pattern is not None:
            patterns[f"P{n}"] = compile_pattern(pattern)
            lines += [
                f"        if P{n}.search(x) is None:",
                f"            return ItemFailure('invalid_value', {key!r} + ': does "
                f"not match ' + {pattern!r}, {key!r})",
            ]
    for attr in compiled.json_attrs:
        key = attr.removeprefix("f_")
        lines += [
            f"    if too_deep(obj.{attr}):",
            f"        return ItemFailure('invalid_value', '{key}: nested deeper "
            f"than {MAX_JSON_DEPTH} levels', {key!r})",
        ]
    for attr in compiled.float_attrs:
        key = attr.removeprefix("f_")
        lines += [
            f"    x = obj.{attr}",
            "    if x is not None and (x != x or x == INF or x == -INF):",
            f"        return ItemFailure('invalid_value', f'{key}: {{x}} is not a "
            f"finite number', {key!r})",
        ]
    for attr in compiled.datetime_attrs:
        lines += [
            f"    x = obj.{attr}",
            "    if x is not None:",
            f"        obj.{attr} = canonical(x)",
        ]
    for stamp in ("created_at", "updated_at"):
        lines += [
            f"    {stamp} = obj._lorry_{stamp}",
            f"    if {stamp} is UNSET:",
            f"        {stamp} = None",
            "    else:",
            f"        {stamp} = stamp({stamp})",
            f"        obj._lorry_{stamp} = UNSET",
        ]
    if any(link.by is not None for link in compiled.links):
        lines.append("    return Valid(compiled, obj, created_at, updated_at)")
    else:
        lines.append(
            "    return Valid(compiled, obj, created_at, updated_at, "
            "encode(obj).decode())"
        )
    namespace: dict[str, Any] = {
        "INF": math.inf,
        "ItemFailure": ItemFailure,
        "UNSET": msgspec.UNSET,
        "Valid": Valid,
        "canonical": canonical_datetime,
        "compiled": compiled,
        "encode": _encode,
        "stamp": _stamp,
        "too_deep": too_deep,
        **patterns,
    }
    exec("\n".join(lines), namespace)
    finish: Callable[[Any], Valid | ItemFailure] = namespace["finish"]
    return finish


def failure_from_message(message: str) -> ItemFailure:
    """Turn a msgspec validation message into a per-item error."""
    m = _MISSING_RE.match(message)
    if m:
        key = m.group(1)
        if key == "item_type":
            return ItemFailure("unknown_item_type", "item_type is missing", key)
        return ItemFailure("required", f"{key} is required", key)
    m = _UNKNOWN_RE.match(message)
    if m:
        key = m.group(1)
        return ItemFailure("unknown_field", f"{key} is not a field of this type", key)
    path = _PATH_RE.search(message)
    key = path.group(1) if path else None
    text = message[: path.start()] if path else message
    if key == "item_type":
        value = text.removeprefix("Invalid value ")
        return ItemFailure("unknown_item_type", f"no item type {value}", key)
    if key is None and "Expected `object`" in text:
        return ItemFailure("invalid_item", f"an item must be a JSON object: {text}")
    where = f"{key}: " if key else ""
    if "got `null`" in text:
        if key in ("created_at", "updated_at"):
            return ItemFailure(
                "invalid_value", f"{key} may not be null; leave it out for now", key
            )
        return ItemFailure("required", f"{key} is required", key)
    if text.startswith("Expected `") and ", got `" in text:
        return ItemFailure("invalid_type", f"{where}{text}", key)
    return ItemFailure("invalid_value", f"{where}{text}", key)


class Validator:
    """Validates raw JSON items against a set of item types."""

    def __init__(
        self, types: list[ItemTypeDef], link_by: dict[str, str] | None = None
    ) -> None:
        self.link_by = dict(link_by or {})
        self.by_key = {t.api_key: compile_type(t, self.link_by) for t in types}
        self.by_struct = {c.struct: c for c in self.by_key.values()}
        structs = tuple(c.struct for c in self.by_key.values())
        self._decoder: msgspec.json.Decoder[Any] | None = None
        if structs:
            union: Any = Union[structs] if len(structs) > 1 else structs[0]  # noqa: UP007
            self._decoder = msgspec.json.Decoder(union, strict=False)
            self._union = union

    def validate(self, raw: bytes) -> Valid | ItemFailure:
        # One item must never fail its whole chunk: whatever escapes the
        # checks below is this item's error.
        try:
            return self._validate(raw)
        except Exception as exc:
            return ItemFailure("invalid_item", f"the item could not be read: {exc}")

    def _validate(self, raw: bytes) -> Valid | ItemFailure:
        if self._decoder is None:
            return ItemFailure("unknown_item_type", "there are no item types yet")
        try:
            obj = self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            return self._slow_path(raw, str(exc))
        except msgspec.DecodeError as exc:
            return ItemFailure("invalid_json", f"not valid JSON: {exc}")
        except RecursionError:
            return ItemFailure("invalid_json", "the item is nested too deeply")
        return self._finish(obj)

    def convert(self, value: dict[str, Any]) -> Valid | ItemFailure:
        """Validate an item given as Python values (bulk update's merged item)."""
        try:
            return self._convert(value)
        except Exception as exc:
            return ItemFailure("invalid_item", f"the item could not be read: {exc}")

    def _convert(self, value: dict[str, Any]) -> Valid | ItemFailure:
        try:
            obj = msgspec.convert(value, self._union, strict=False)
        except msgspec.ValidationError as exc:
            return self._repair(value, str(exc))
        except RecursionError:
            return ItemFailure("invalid_value", "the item is nested too deeply")
        return self._finish(obj)

    def _slow_path(self, raw: bytes, message: str) -> Valid | ItemFailure:
        try:
            value = msgspec.json.decode(raw)
        except RecursionError:
            return ItemFailure("invalid_json", "the item is nested too deeply")
        except msgspec.DecodeError as exc:
            return ItemFailure("invalid_json", f"not valid JSON: {exc}")
        return self._repair(value, message)

    def _repair(self, value: Any, message: str) -> Valid | ItemFailure:
        # msgspec reads "true"/"false"/"1"/"0" as booleans; CSV exports also
        # say yes/no, Y/N, on/off. Retry once with those spelled out.
        failure = failure_from_message(message)
        if failure.code not in ("invalid_type", "invalid_value") or not isinstance(
            value, dict
        ):
            return failure
        compiled = self.by_key.get(value.get("item_type", ""))
        if compiled is None:
            return failure
        fixed = dict(value)
        for key in compiled.bool_keys:
            v = fixed.get(key)
            if isinstance(v, str):
                low = v.strip().lower()
                if low in _TRUE:
                    fixed[key] = True
                elif low in _FALSE:
                    fixed[key] = False
        # A date alone in a datetime field means midnight UTC.
        for key in compiled.datetime_keys:
            v = fixed.get(key)
            if isinstance(v, str) and _DATE_RE.match(v.strip()):
                fixed[key] = v.strip() + "T00:00:00Z"
        if fixed == value:
            return failure
        try:
            obj = msgspec.convert(fixed, compiled.struct, strict=False)
        except msgspec.ValidationError as exc:
            return failure_from_message(str(exc))
        return self._finish(obj)

    def _finish(self, obj: Any) -> Valid | ItemFailure:
        try:
            return self.by_struct[type(obj)].finish(obj)
        except (OverflowError, ValueError) as exc:
            # A datetime whose offset moves it past year 1 or 9999, and such.
            return ItemFailure("invalid_value", f"a value is out of range: {exc}")


def canonical_datetime(value: dt.datetime) -> str:
    """The stored form of a datetime: UTC, fixed width, so strings sort as times.

    Naive datetimes are read as UTC.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    elif value.utcoffset():
        value = value.astimezone(_UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
