"""The options of bulk jobs, checked when a job is accepted."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.errors import ApiError, ErrorItem
from lorry.store import item_types as type_store

__all__ = ["MAX_CHUNK_SIZE", "check_options"]

MAX_CHUNK_SIZE = 50_000
_PATH_RE = re.compile(r" - at `\$([^`]*)`$")
#: The steps of a msgspec path: .name, [index] or [...] (a dict key).
_STEP_RE = re.compile(r"\.(\w+)|\[(\d+)\]")
_ALLOWED = {
    "bulk_create": {"skip_duplicates", "link_by", "chunk_size"},
    "bulk_update": {"link_by", "chunk_size"},
    "bulk_destroy": {"chunk_size"},
}


class _Options(msgspec.Struct, forbid_unknown_fields=True):
    skip_duplicates: bool = False
    link_by: dict[str, str] | None = None
    chunk_size: int | None = None


def _bad(detail: str, path: list[str], in_query: bool) -> ApiError:
    """An option error, located where the option was given."""
    if in_query:
        name = path[0] + "".join(f"[{p}]" for p in path[1:]) if path else "query"
        item = ErrorItem.make(422, "invalid_option", detail, parameter=name)
    else:
        pointer = "/" + "/".join(path)
        item = ErrorItem.make(422, "invalid_option", detail, pointer=pointer)
    return ApiError(422, [item])


def check_options(
    conn: sa.Connection, kind: str, raw: dict[str, Any], in_query: bool
) -> dict[str, Any]:
    """Validate a job's options; return them normalised (no None values)."""
    for key in raw:
        if key not in _ALLOWED[kind]:
            allowed = ", ".join(sorted(_ALLOWED[kind]))
            raise _bad(
                f"unknown option {key!r} for {kind}; allowed: {allowed}",
                [key],
                in_query,
            )
    try:
        opts = msgspec.convert(raw, _Options, strict=False)
    except msgspec.ValidationError as exc:
        m = _PATH_RE.search(str(exc))
        path = ["".join(s) for s in _STEP_RE.findall(m.group(1))] if m else []
        text = str(exc)[: m.start()] if m else str(exc)
        raise _bad(text, path, in_query) from None
    if opts.chunk_size is not None and not 1 <= opts.chunk_size <= MAX_CHUNK_SIZE:
        raise _bad(
            f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}",
            ["chunk_size"],
            in_query,
        )
    if opts.link_by:
        _check_link_by(conn, opts.link_by, in_query)
    out: dict[str, Any] = {}
    if kind == "bulk_create":
        out["skip_duplicates"] = opts.skip_duplicates
    if opts.link_by:
        out["link_by"] = dict(opts.link_by)
    if opts.chunk_size is not None:
        out["chunk_size"] = opts.chunk_size
    return out


def _check_link_by(
    conn: sa.Connection, link_by: dict[str, str], in_query: bool
) -> None:
    types = {t.api_key: t for t in type_store.load_all(conn)}
    for key, by in link_by.items():
        path = ["link_by", key]
        fields = [
            f
            for t in types.values()
            for f in t.fields
            if f.api_key == key and f.field_type in ("link", "links")
        ]
        if not fields:
            raise _bad(
                f"link_by: no item type has a link field {key!r}",
                path,
                in_query,
            )
        for f in fields:
            targets = f.validators.item_types or []
            if len(targets) != 1:
                raise _bad(
                    f"link_by: field {key!r} may link to several types; "
                    "link_by needs exactly one",
                    path,
                    in_query,
                )
            target = types.get(targets[0])
            target_field = target.field(by) if target else None
            if target_field is None or not target_field.unique:
                raise _bad(
                    f"link_by: {targets[0]!r} has no unique field {by!r}",
                    path,
                    in_query,
                )
