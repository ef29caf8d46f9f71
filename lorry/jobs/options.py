"""The options of bulk jobs, checked when a job is accepted."""

from __future__ import annotations

import codecs
import re
from typing import Any, Literal

import msgspec
import sqlalchemy as sa

from lorry.errors import ApiError, ErrorItem
from lorry.jobs.migration import check_migration
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
    "import": {
        "type",
        "format",
        "encoding",
        "delimiter",
        "mapping",
        "skip_duplicates",
        "upsert_by",
        "link_by",
        "dry_run",
        "unknown_columns",
        "decimal",
        "thousands",
        "chunk_size",
    },
}
#: The delimiters an import takes; a tab may be given as "\\t" or "tab".
_DELIMITERS = {",": ",", ";": ";", "|": "|", "\t": "\t", "\\t": "\t", "tab": "\t"}


class _Options(msgspec.Struct, forbid_unknown_fields=True):
    skip_duplicates: bool = False
    link_by: dict[str, str] | None = None
    chunk_size: int | None = None
    dry_run: bool = False
    # Imports only.
    type: str | None = None
    format: Literal["csv", "json", "ndjson"] | None = None
    encoding: str | None = None
    delimiter: str | None = None
    mapping: dict[str, str] | None = None
    upsert_by: str | None = None
    unknown_columns: Literal["ignore", "reject"] = "ignore"
    decimal: Literal[".", ","] = "."
    thousands: Literal["", ",", ".", " ", "'", "_"] = ""


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
    if kind == "migrate":
        return check_migration(conn, raw)
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
    if kind in ("bulk_create", "import"):
        out["skip_duplicates"] = opts.skip_duplicates
    if opts.link_by:
        out["link_by"] = dict(opts.link_by)
    if opts.chunk_size is not None:
        out["chunk_size"] = opts.chunk_size
    if opts.dry_run:
        out["dry_run"] = True
    if kind == "import":
        out.update(_import_options(conn, opts, in_query))
    return out


def _import_options(
    conn: sa.Connection, opts: _Options, in_query: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "unknown_columns": opts.unknown_columns,
        "decimal": opts.decimal,
        "thousands": opts.thousands,
    }
    if opts.decimal == opts.thousands:
        raise _bad("decimal and thousands must differ", ["thousands"], in_query)
    type_def = None
    if opts.type is not None:
        type_def = type_store.find(conn, opts.type)
        if type_def is None:
            raise _bad(f"no item type {opts.type!r}", ["type"], in_query)
        out["type"] = opts.type
    if opts.format is not None:
        out["format"] = opts.format
    if opts.encoding is not None:
        try:
            out["encoding"] = codecs.lookup(opts.encoding).name
        except LookupError:
            raise _bad(
                f"unknown encoding {opts.encoding!r}", ["encoding"], in_query
            ) from None
    if opts.delimiter is not None:
        if opts.delimiter not in _DELIMITERS:
            raise _bad(
                "delimiter must be one of , ; | or \\t (tab)",
                ["delimiter"],
                in_query,
            )
        out["delimiter"] = _DELIMITERS[opts.delimiter]
    if opts.mapping:
        if type_def is not None:
            known = {f.api_key for f in type_def.fields} | _SYSTEM_COLUMNS
            for column, target in opts.mapping.items():
                if target and target not in known:
                    raise _bad(
                        f"mapping: {opts.type!r} has no field {target!r}",
                        ["mapping", column],
                        in_query,
                    )
        out["mapping"] = dict(opts.mapping)
    if opts.upsert_by is not None:
        field = type_def.field(opts.upsert_by) if type_def else None
        if type_def is None:
            raise _bad("upsert_by needs the import's type", ["upsert_by"], in_query)
        if field is None or not field.unique:
            raise _bad(
                f"upsert_by: {opts.type!r} has no unique field {opts.upsert_by!r}",
                ["upsert_by"],
                in_query,
            )
        out["upsert_by"] = opts.upsert_by
    return out


#: Columns an import reads besides the fields (an export writes them).
_SYSTEM_COLUMNS = frozenset({"id", "item_type", "created_at", "updated_at", "meta"})


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
