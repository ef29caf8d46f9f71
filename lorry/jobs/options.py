"""The options of bulk jobs, checked when a job is accepted."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.errors import ApiError
from lorry.store import item_types as type_store

__all__ = ["MAX_CHUNK_SIZE", "check_options"]

MAX_CHUNK_SIZE = 50_000
_ALLOWED = {
    "bulk_create": {"skip_duplicates", "link_by", "chunk_size"},
    "bulk_update": {"link_by", "chunk_size"},
    "bulk_destroy": {"chunk_size"},
}


class _Options(msgspec.Struct, forbid_unknown_fields=True):
    skip_duplicates: bool = False
    link_by: dict[str, str] | None = None
    chunk_size: int | None = None


def check_options(
    conn: sa.Connection, kind: str, raw: dict[str, Any], prefix: str
) -> dict[str, Any]:
    """Validate a job's options; return them normalised (no None values)."""
    for key in raw:
        if key not in _ALLOWED[kind]:
            allowed = ", ".join(sorted(_ALLOWED[kind]))
            raise ApiError.invalid(
                f"unknown option {key!r} for {kind}; allowed: {allowed}",
                pointer=f"{prefix}/{key}",
                code="invalid_option",
            )
    try:
        opts = msgspec.convert(raw, _Options, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError.invalid(
            str(exc), pointer=prefix or "/", code="invalid_option"
        ) from None
    if opts.chunk_size is not None and not 1 <= opts.chunk_size <= MAX_CHUNK_SIZE:
        raise ApiError.invalid(
            f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}",
            pointer=f"{prefix}/chunk_size",
            code="invalid_option",
        )
    if opts.link_by:
        _check_link_by(conn, opts.link_by, prefix)
    out: dict[str, Any] = {}
    if kind == "bulk_create":
        out["skip_duplicates"] = opts.skip_duplicates
    if opts.link_by:
        out["link_by"] = dict(opts.link_by)
    if opts.chunk_size is not None:
        out["chunk_size"] = opts.chunk_size
    return out


def _check_link_by(conn: sa.Connection, link_by: dict[str, str], prefix: str) -> None:
    types = {t.api_key: t for t in type_store.load_all(conn)}
    for key, by in link_by.items():
        pointer = f"{prefix}/link_by/{key}"
        fields = [
            f
            for t in types.values()
            for f in t.fields
            if f.api_key == key and f.field_type in ("link", "links")
        ]
        if not fields:
            raise ApiError.invalid(
                f"link_by: no item type has a link field {key!r}",
                pointer=pointer,
                code="invalid_option",
            )
        for f in fields:
            targets = f.validators.item_types or []
            if len(targets) != 1:
                raise ApiError.invalid(
                    f"link_by: field {key!r} may link to several types; "
                    "link_by needs exactly one",
                    pointer=pointer,
                    code="invalid_option",
                )
            target = types.get(targets[0])
            target_field = target.field(by) if target else None
            if target_field is None or not target_field.unique:
                raise ApiError.invalid(
                    f"link_by: {targets[0]!r} has no unique field {by!r}",
                    pointer=pointer,
                    code="invalid_option",
                )
