"""Reading bracketed query parameters: ``filter[fields][price][gt]=10``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from lorry.errors import ApiError

__all__ = ["nested_params", "page_params"]

_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[[^\[\]]*\])*)$")
_PART_RE = re.compile(r"\[([^\[\]]*)\]")


def nested_params(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Fold ``a[b][c]=v`` pairs into ``{"a": {"b": {"c": v}}}``."""
    out: dict[str, Any] = {}
    for key, value in items:
        m = _KEY_RE.match(key)
        if m is None:
            raise ApiError.one(
                400, "invalid_parameter", f"malformed parameter {key!r}", parameter=key
            )
        path = [m.group(1), *_PART_RE.findall(m.group(2))]
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ApiError.one(
                    400,
                    "invalid_parameter",
                    f"parameter {key!r} clashes with another",
                    parameter=key,
                )
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise ApiError.one(
                400,
                "invalid_parameter",
                f"parameter {key!r} clashes with another",
                parameter=key,
            )
        node[path[-1]] = value
    return out


def _int(value: Any, name: str, lo: int, hi: int, default: int) -> int:
    if value is None:
        return default
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ApiError.one(
            400, "invalid_parameter", f"{name} must be an integer", parameter=name
        ) from None
    if not lo <= n <= hi:
        raise ApiError.one(
            400,
            "invalid_parameter",
            f"{name} must be between {lo} and {hi}",
            parameter=name,
        )
    return n


def page_params(
    params: dict[str, Any], default_limit: int, max_limit: int
) -> tuple[int, int]:
    page = params.get("page", {})
    if not isinstance(page, dict):
        raise ApiError.one(
            400,
            "invalid_parameter",
            "use page[limit] and page[offset]",
            parameter="page",
        )
    limit = _int(page.get("limit"), "page[limit]", 1, max_limit, default_limit)
    offset = _int(page.get("offset"), "page[offset]", 0, 2**31, 0)
    return limit, offset
