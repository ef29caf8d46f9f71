"""Encoding filters and pages as the bracketed query parameters of the API."""

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

__all__ = ["Params", "encode_order_by", "encode_param", "encode_scalar"]

Params = list[tuple[str, str]]


def encode_scalar(value: Any) -> str:
    """Render one value the way the server parses query values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _encode_list(values: Iterable[Any]) -> str:
    values = list(values)
    rendered = [encode_scalar(value) for value in values]
    # Commas separate the values, so a value that holds one can only travel
    # inside a JSON array, which the server also accepts.
    if any("," in text for text in rendered):
        return msgspec.json.encode(values).decode()
    return ",".join(rendered)


def encode_param(name: str, value: Any) -> Params:
    """Flatten ``{"fields": {"price": {"gt": 10}}}`` under ``name`` into
    ``[("name[fields][price][gt]", "10")]``; ``None`` values are left out."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        params: Params = []
        for key, inner in value.items():
            params += encode_param(f"{name}[{key}]", inner)
        return params
    if isinstance(value, list | tuple | set | frozenset):
        return [(name, _encode_list(value))]
    return [(name, encode_scalar(value))]


def encode_order_by(order_by: str | Sequence[str] | None) -> Params:
    if order_by is None:
        return []
    if isinstance(order_by, str):
        return [("order_by", order_by)]
    return [("order_by", ",".join(order_by))]
