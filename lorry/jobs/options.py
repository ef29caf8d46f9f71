"""The options of bulk jobs, checked when a job is accepted."""

from __future__ import annotations

import codecs
import re
from typing import Any, Literal

import msgspec
import sqlalchemy as sa

from lorry.config import Settings
from lorry.errors import ApiError, ErrorItem
from lorry.jobs.control import MAX_TIMEOUT_SECONDS
from lorry.jobs.migration import check_migration
from lorry.store import item_types as type_store
from lorry.store.dialect import Dialect
from lorry.store.selection import select_items
from lorry.store.snapshot import exported_types

__all__ = [
    "EXPORT_FORMATS",
    "MAX_CHUNK_SIZE",
    "MAX_DEPTH",
    "MAX_EXPORT_IDS",
    "MAX_PRIORITY",
    "MAX_RETAIN_FOR",
    "MAX_URL_TTL",
    "check_export_options",
    "check_options",
    "check_timeout",
    "check_url_ttl",
    "expiry",
]

MAX_CHUNK_SIZE = 50_000
EXPORT_FORMATS = ("json", "ndjson", "csv")
#: Deepest ``include_relationships`` an export takes.
MAX_DEPTH = 10
#: Longest life of a download URL: a link is a credential, and should not
#: outlive the job's retention by much.
MAX_URL_TTL = 30 * 86_400
#: Ids an export's filter may list: an export may name many more than a page.
MAX_EXPORT_IDS = 10_000
#: Longest retention a job may ask for (retain_for, in seconds): ten years.
MAX_RETAIN_FOR = 10 * 365 * 86_400
#: A job's priority runs from -MAX_PRIORITY to MAX_PRIORITY (default 0).
MAX_PRIORITY = 10
#: Options every kind takes, checked before the kind's own (lorry.jobs.runner
#: reads them): how long the finished job is kept, its priority, and for the
#: kinds that write items one by one, all or nothing and the error budget.
_CONTROL = ("retain_for", "priority", "atomic", "max_errors", "max_error_rate")
_ATOMIC_KINDS = frozenset({"bulk_create", "bulk_update", "bulk_destroy", "import"})
_BUDGET_KINDS = _ATOMIC_KINDS | {"migrate"}
_PATH_RE = re.compile(r" - at `\$([^`]*)`$")
#: The steps of a msgspec path: .name, [index] or [...] (a dict key).
_STEP_RE = re.compile(r"\.(\w+)|\[(\d+)\]")
_ALLOWED = {
    "bulk_create": {
        "skip_duplicates",
        "link_by",
        "chunk_size",
        "timeout_seconds",
        "dry_run",
    },
    "bulk_update": {"link_by", "chunk_size", "timeout_seconds", "dry_run"},
    "bulk_destroy": {"chunk_size", "timeout_seconds", "dry_run"},
    "import": {
        "timeout_seconds",
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
    timeout_seconds: float | None = None
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


def expiry(settings: Settings, options: dict[str, Any], finished_at: int) -> int:
    """When a job that finished at ``finished_at`` expires (microseconds)."""
    seconds = options.get("retain_for")
    if seconds is None:
        seconds = settings.job_retention_days * 86_400
    return finished_at + int(seconds) * 1_000_000


def _whole(value: Any, name: str, in_query: bool) -> int:
    # A query parameter is text; a JSON body has a number (and no bool).
    if in_query and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _bad(
        f"{name} must be a whole number from 0 up, not {value!r}", [name], in_query
    )


def _flag(value: Any, name: str, in_query: bool) -> bool:
    if in_query and isinstance(value, str) and value.lower() in _FLAG_TEXT:
        return _FLAG_TEXT[value.lower()]
    if isinstance(value, bool):
        return value
    raise _bad(f"{name} must be true or false, not {value!r}", [name], in_query)


_FLAG_TEXT = {"true": True, "1": True, "false": False, "0": False}


def _priority(value: Any, in_query: bool) -> int:
    number: Any = value
    if in_query and isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            pass
    if (
        isinstance(number, int)
        and not isinstance(number, bool)
        and -MAX_PRIORITY <= number <= MAX_PRIORITY
    ):
        return number
    raise _bad(
        f"priority must be a whole number from {-MAX_PRIORITY} to {MAX_PRIORITY}, "
        f"not {value!r}",
        ["priority"],
        in_query,
    )


def _rate(value: Any, in_query: bool) -> float:
    rate: Any = value
    if in_query and isinstance(value, str):
        try:
            rate = float(value)
        except ValueError:
            pass
    if isinstance(rate, int | float) and not isinstance(rate, bool) and 0 <= rate <= 1:
        return float(rate)
    raise _bad(
        f"max_error_rate must be a number from 0 to 1, not {value!r}",
        ["max_error_rate"],
        in_query,
    )


def _control_options(
    kind: str, raw: dict[str, Any], in_query: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split off and check the job-control options; return (rest, checked)."""
    rest = {k: v for k, v in raw.items() if k not in _CONTROL}
    out: dict[str, Any] = {}
    if raw.get("retain_for") is not None:
        seconds = _whole(raw["retain_for"], "retain_for", in_query)
        if seconds > MAX_RETAIN_FOR:
            raise _bad(
                f"retain_for must be at most {MAX_RETAIN_FOR} seconds (ten years)",
                ["retain_for"],
                in_query,
            )
        out["retain_for"] = seconds
    if raw.get("priority") is not None:
        out["priority"] = _priority(raw["priority"], in_query)
    for key in ("atomic", "max_errors", "max_error_rate"):
        allowed = _ATOMIC_KINDS if key == "atomic" else _BUDGET_KINDS
        if raw.get(key) is not None and kind not in allowed:
            raise _bad(f"{key} does not apply to {kind} jobs", [key], in_query)
    if raw.get("atomic") is not None and _flag(raw["atomic"], "atomic", in_query):
        out["atomic"] = True
    if raw.get("max_errors") is not None:
        out["max_errors"] = _whole(raw["max_errors"], "max_errors", in_query)
    if raw.get("max_error_rate") is not None:
        out["max_error_rate"] = _rate(raw["max_error_rate"], in_query)
    budget = [k for k in ("max_errors", "max_error_rate") if k in out]
    if out.get("atomic") and budget:
        raise _bad(
            f"{budget[0]} applies to jobs that are not atomic: an atomic job "
            "applies nothing when any item fails, and reports every failure",
            [budget[0]],
            in_query,
        )
    return rest, out


def check_options(
    conn: sa.Connection, kind: str, raw: dict[str, Any], in_query: bool
) -> dict[str, Any]:
    """Validate a job's options; return them normalised (no None values)."""
    raw, control = _control_options(kind, raw, in_query)
    if kind == "migrate":
        rest = {k: v for k, v in raw.items() if k != "timeout_seconds"}
        timeout = check_timeout(raw.get("timeout_seconds"), ["timeout_seconds"])
        migration = {**check_migration(conn, rest), **control}
        return (
            migration if timeout is None else {**migration, "timeout_seconds": timeout}
        )
    return {**_kind_options(conn, kind, raw, in_query), **control}


def _kind_options(
    conn: sa.Connection, kind: str, raw: dict[str, Any], in_query: bool
) -> dict[str, Any]:
    for key in raw:
        if key not in _ALLOWED[kind]:
            allowed = ", ".join(sorted(_ALLOWED[kind] | set(_CONTROL)))
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
    timeout = check_timeout(opts.timeout_seconds, ["timeout_seconds"], in_query)
    out: dict[str, Any] = {}
    if kind in ("bulk_create", "import"):
        out["skip_duplicates"] = opts.skip_duplicates
    if opts.link_by:
        out["link_by"] = dict(opts.link_by)
    if opts.chunk_size is not None:
        out["chunk_size"] = opts.chunk_size
    if timeout is not None:
        out["timeout_seconds"] = timeout
    if opts.dry_run:
        out["dry_run"] = True
    if kind == "import":
        out.update(_import_options(conn, opts, in_query))
    return out


def check_timeout(
    value: Any, path: list[str], in_query: bool = False
) -> int | float | None:
    """A job's ``timeout_seconds`` as given (None: the server's default)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_TIMEOUT_SECONDS
    ):
        raise _bad(
            f"timeout_seconds must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT_SECONDS}, not {value!r}",
            path,
            in_query,
        )
    return int(value) if float(value).is_integer() else value


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
            codec = codecs.lookup(opts.encoding)
        except LookupError:
            raise _bad(
                f"unknown encoding {opts.encoding!r}", ["encoding"], in_query
            ) from None
        # rot13, base64, zlib and such turn bytes into bytes, not text.
        if not codec._is_text_encoding:
            raise _bad(
                f"{opts.encoding!r} is not a text encoding", ["encoding"], in_query
            )
        out["encoding"] = codec.name
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


_EXPORT_ALLOWED = (
    "filter",
    "order_by",
    "format",
    "fields",
    "include_relationships",
    "url_ttl",
    "bom",
    "delimiter",
    "timeout_seconds",
    "retain_for",
    "priority",
)


def _bad_export(detail: str, name: str) -> ApiError:
    return _bad(detail, [name], in_query=False)


def check_url_ttl(value: Any, default: int) -> int:
    """A URL lifetime in seconds given by a client, checked (or ``default``)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_export(
            f"url_ttl must be a number of seconds, not {value!r}", "url_ttl"
        )
    if not 1 <= value <= MAX_URL_TTL:
        raise _bad_export(
            f"url_ttl must be between 1 and {MAX_URL_TTL} seconds", "url_ttl"
        )
    return value


def _depth(value: Any) -> int:
    if value is True:
        return 1
    if value is False or value is None:
        return 0
    if isinstance(value, int) and 0 <= value <= MAX_DEPTH:
        return value
    raise _bad_export(
        f"include_relationships takes true, false or a depth from 0 to "
        f"{MAX_DEPTH}, not {value!r}",
        "include_relationships",
    )


def check_export_options(
    conn: sa.Connection, dialect: Dialect, raw: dict[str, Any], default_ttl: int
) -> dict[str, Any]:
    """Validate an export's options; return them normalised.

    The filter and ``order_by`` are read here as the export will read them,
    so that a job that is accepted has a selection that compiles.
    """
    raw, control = _control_options("export", raw, in_query=False)
    for key in raw:
        if key not in _EXPORT_ALLOWED:
            allowed = ", ".join(_EXPORT_ALLOWED)
            raise _bad_export(
                f"unknown option {key!r} for export; allowed: {allowed}", key
            )
    file_format = raw.get("format", "json")
    if file_format not in EXPORT_FORMATS:
        raise _bad_export(
            f"format must be one of {', '.join(EXPORT_FORMATS)}, not {file_format!r}",
            "format",
        )
    order_by = raw.get("order_by")
    if order_by is not None and not isinstance(order_by, str):
        raise _bad_export("order_by must be a string such as '-created_at'", "order_by")
    selection = select_items(
        conn, dialect, raw.get("filter"), order_by, max_ids=MAX_EXPORT_IDS
    )
    depth = _depth(raw.get("include_relationships"))
    types = exported_types(selection.types, type_store.load_all(conn), depth)
    out: dict[str, Any] = {
        "filter": raw.get("filter") or {},
        "order_by": order_by,
        "format": file_format,
        "fields": _export_fields(raw.get("fields"), {
            f.api_key for t in types for f in t.fields
        }),
        "include_relationships": depth,
        "url_ttl": check_url_ttl(raw.get("url_ttl"), default_ttl),
        **control,
    }  # fmt: skip
    timeout = check_timeout(raw.get("timeout_seconds"), ["timeout_seconds"])
    if timeout is not None:
        out["timeout_seconds"] = timeout
    csv_only = [k for k in ("bom", "delimiter") if raw.get(k) is not None]
    if file_format != "csv":
        if csv_only:
            raise _bad_export(f"{csv_only[0]} applies to csv exports only", csv_only[0])
        return out
    bom = raw.get("bom", False)
    if not isinstance(bom, bool):
        raise _bad_export(f"bom must be true or false, not {bom!r}", "bom")
    delimiter = raw.get("delimiter") or ","
    if delimiter not in _DELIMITERS:
        # Only what an import reads back (and sniffs) may be written.
        raise _bad_export("delimiter must be one of , ; | or \\t (tab)", "delimiter")
    out["bom"] = bom
    out["delimiter"] = _DELIMITERS[delimiter]
    return out


def _export_fields(value: Any, known: set[str]) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise _bad_export("fields must be a non-empty list of field api_keys", "fields")
    for n, key in enumerate(value):
        if not isinstance(key, str) or key not in known:
            raise _bad(
                f"fields: no exported item type has a field {key!r}",
                ["fields", str(n)],
                in_query=False,
            )
    return list(dict.fromkeys(value))
