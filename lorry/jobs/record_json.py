"""The JSON of a staged import record, read as leniently as is safe.

msgspec reads nearly every record. One it refuses for a number no double
holds (1e999), or NaN or Infinity, is read again, that value kept as the text
the file wrote, so that its field refuses it by name instead of the record
failing whole; and no string that is not text (a lone surrogate) gets past.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

__all__ = ["decode_fast", "decode_record", "not_text"]

decode_fast = msgspec.json.Decoder(dict[str, Any]).decode


class _Literal(str):
    """A number JSON cannot hold as a double (1e999) or NaN/Infinity, as
    written."""


def _nested_literal(value: Any) -> bool:
    if isinstance(value, _Literal):
        return True
    if isinstance(value, dict):
        return any(_nested_literal(v) for v in value.values())
    if isinstance(value, list):
        return any(_nested_literal(v) for v in value)
    return False


def not_text(value: Any, key: str = "") -> str | None:
    """The key under which a string is not valid text (a lone surrogate)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return key or value.encode("utf-8", "backslashreplace").decode()
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            name = key or str(k)
            if not_text(k) is not None:
                return str(k).encode("utf-8", "backslashreplace").decode()
            if (found := not_text(v, name)) is not None:
                return found
    elif isinstance(value, list):
        for v in value:
            if (found := not_text(v, key)) is not None:
                return found
    return None


def decode_record(raw: bytes) -> dict[str, Any]:
    """A record as a dict. A value that is a number no double holds, or NaN
    or Infinity, is given to its field as the text the file wrote, so that
    the field's type refuses it and the error names the field."""
    try:
        return decode_fast(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        problem = exc
    try:
        record = json.loads(
            raw,
            parse_float=lambda s: float(s) if math.isfinite(float(s)) else _Literal(s),
            parse_int=int,
            parse_constant=_Literal,
        )
    except (ValueError, RecursionError):
        raise problem from None
    top = record.values() if isinstance(record, dict) else ()
    if not isinstance(record, dict) or any(
        _nested_literal(v) for v in top if not isinstance(v, _Literal)
    ):
        raise problem
    return {k: str(v) if isinstance(v, _Literal) else v for k, v in record.items()}
