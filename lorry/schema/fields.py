"""Item type and field definitions, and the checks a definition must pass."""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from lorry.errors import ApiError, ErrorItem
from lorry.schema.patterns import PatternError, compile_pattern

__all__ = [
    "FIELD_TYPES",
    "RESERVED_KEYS",
    "FieldDef",
    "ItemTypeDef",
    "Validators",
    "check_fields",
]

FIELD_TYPES = frozenset(
    {
        "string",
        "text",
        "integer",
        "float",
        "boolean",
        "date",
        "datetime",
        "json",
        "enum",
        "link",
        "links",
    }
)
RESERVED_KEYS = frozenset(
    {"id", "type", "item_type", "meta", "created_at", "updated_at"}
)
_UNIQUE_TYPES = frozenset(
    {"string", "text", "integer", "float", "date", "datetime", "enum", "link"}
)
_API_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class LengthRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    min: int | None = None
    max: int | None = None


class RangeRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    min: float | None = None
    max: float | None = None


class Validators(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    length: LengthRule | None = None
    range: RangeRule | None = None
    pattern: str | None = None
    enum: list[str] | None = None
    item_types: list[str] | None = None


class FieldDef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    api_key: str
    field_type: str
    label: str | None = None
    required: bool = False
    unique: bool = False
    default: Any = None
    validators: Validators = msgspec.field(default_factory=Validators)


class ItemTypeDef(msgspec.Struct, kw_only=True):
    """An item type as the validator compiler and the repositories see it."""

    pk: int
    id: str
    api_key: str
    name: str
    fields: list[FieldDef]
    created_at: int
    updated_at: int

    def field(self, key: str) -> FieldDef | None:
        for f in self.fields:
            if f.api_key == key:
                return f
        return None


def check_api_key(value: str, pointer: str) -> None:
    if not _API_KEY_RE.match(value):
        raise ApiError.invalid(
            f"api_key {value!r} must start with a lowercase letter and hold only "
            "lowercase letters, digits and underscores (at most 64)",
            pointer=pointer,
        )


def _field_problems(f: FieldDef) -> list[tuple[str, str]]:
    """Return (detail, pointer suffix) for each thing wrong with one field."""
    problems: list[tuple[str, str]] = []
    v = f.validators
    if not _API_KEY_RE.match(f.api_key):
        problems.append(
            (f"api_key {f.api_key!r} must match [a-z][a-z0-9_]*", "/api_key")
        )
    elif f.api_key in RESERVED_KEYS:
        problems.append((f"api_key {f.api_key!r} is reserved", "/api_key"))
    if v.enum is not None and len(set(v.enum)) != len(v.enum):
        problems.append(("validators.enum lists a value twice", "/validators/enum"))
    if any("\x00" in value for value in v.enum or ()):
        problems.append(
            ("validators.enum: values may not hold NUL", "/validators/enum")
        )
    if f.field_type not in FIELD_TYPES:
        allowed = ", ".join(sorted(FIELD_TYPES))
        problems.append(
            (f"field_type {f.field_type!r} is not one of {allowed}", "/field_type")
        )
        return problems
    if f.unique and f.field_type not in _UNIQUE_TYPES:
        problems.append(
            (f"a {f.field_type} field cannot be unique", "/unique"),
        )
    if f.field_type == "enum" and not v.enum:
        problems.append(("an enum field needs validators.enum", "/validators/enum"))
    if v.enum is not None and f.field_type not in ("enum", "string"):
        problems.append(
            ("validators.enum applies to enum and string fields", "/validators/enum")
        )
    if f.field_type in ("link", "links") and not v.item_types:
        problems.append(
            (
                "a link field needs validators.item_types",
                "/validators/item_types",
            )
        )
    if v.length is not None and f.field_type not in ("string", "text", "links"):
        problems.append(
            (
                "validators.length applies to string, text and links fields",
                "/validators/length",
            )
        )
    if v.length is not None:
        lo, hi = v.length.min, v.length.max
        if (lo is not None and lo < 0) or (
            lo is not None and hi is not None and lo > hi
        ):
            problems.append(
                ("validators.length: need 0 <= min <= max", "/validators/length")
            )
    if v.range is not None:
        if f.field_type not in ("integer", "float"):
            problems.append(
                (
                    "validators.range applies to integer and float fields",
                    "/validators/range",
                )
            )
        lo_r, hi_r = v.range.min, v.range.max
        bad = [x for x in (lo_r, hi_r) if x is not None and not math.isfinite(x)]
        if bad or (lo_r is not None and hi_r is not None and lo_r > hi_r):
            problems.append(
                ("validators.range: need finite min <= max", "/validators/range")
            )
    if v.pattern is not None:
        if f.field_type not in ("string", "text"):
            problems.append(
                (
                    "validators.pattern applies to string and text fields",
                    "/validators/pattern",
                )
            )
        try:
            compile_pattern(v.pattern)
        except PatternError as exc:
            problems.append((f"validators.pattern: {exc}", "/validators/pattern"))
    return problems


def check_fields(fields: list[FieldDef], pointer: str) -> None:
    """Raise one ApiError listing every problem of a list of field definitions."""
    errors: list[ErrorItem] = []
    seen: set[str] = set()
    for i, f in enumerate(fields):
        for detail, suffix in _field_problems(f):
            errors.append(
                ErrorItem.invalid(
                    f"field {f.api_key!r}: {detail}",
                    pointer=f"{pointer}/{i}{suffix}",
                    code="invalid_field",
                )
            )
        if f.api_key in seen:
            errors.append(
                ErrorItem.invalid(
                    f"field {f.api_key!r}: duplicate api_key",
                    pointer=f"{pointer}/{i}/api_key",
                    code="invalid_field",
                )
            )
        seen.add(f.api_key)
    if errors:
        raise ApiError(422, errors)
