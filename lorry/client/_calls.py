"""Every API operation as a :class:`~lorry.client._wire.Call`, built once for
both clients, so that the two cannot drift apart."""

import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from typing import Any, BinaryIO, Literal

import msgspec

from lorry.client import _wire as wire
from lorry.client._models import ExportLink, ItemType, Job, JobItemError, Page
from lorry.client._query import Params, encode_order_by, encode_param
from lorry.client._wire import Call, UploadCallback

__all__ = [
    "Item",
    "JobEntries",
    "bulk_create",
    "bulk_destroy",
    "bulk_update",
    "cancel_job",
    "control_options",
    "create_item",
    "create_item_type",
    "delete_job",
    "destroy_item",
    "destroy_item_type",
    "export_job",
    "export_url",
    "find_item",
    "find_item_type",
    "find_job",
    "import_file",
    "import_format",
    "import_options",
    "job_entries",
    "job_id",
    "list_item_types",
    "list_items",
    "list_jobs",
    "migrate",
    "open_source",
    "purge_jobs",
    "retry_job",
    "unprocessed",
    "update_item",
    "update_item_type",
]

#: An item is flat: ``id``, ``item_type``, its field values, timestamps, ``meta``.
Item = dict[str, Any]
JobEntries = Literal["data", "errors", "failed-items"]


def _json(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _item_type_body(attributes: Mapping[str, Any]) -> bytes:
    return _json({"data": {"type": "item_type", "attributes": dict(attributes)}})


def create_item_type(
    api_key: str, name: str, fields: Sequence[Mapping[str, Any]]
) -> Call[ItemType]:
    body = _item_type_body({"api_key": api_key, "name": name, "fields": fields})
    return Call("POST", "/item-types", wire.one(ItemType), body=body)


def list_item_types() -> Call[Page[ItemType]]:
    return Call("GET", "/item-types", wire.many(ItemType, 0))


def find_item_type(api_key: str) -> Call[ItemType]:
    return Call("GET", wire.path("item-types", api_key), wire.one(ItemType))


def update_item_type(
    api_key: str, name: str | None, fields: Sequence[Mapping[str, Any]] | None
) -> Call[ItemType]:
    attributes: dict[str, Any] = {}
    if name is not None:
        attributes["name"] = name
    if fields is not None:
        attributes["fields"] = fields
    body = _item_type_body(attributes)
    return Call(
        "PATCH", wire.path("item-types", api_key), wire.one(ItemType), body=body
    )


def destroy_item_type(api_key: str) -> Call[None]:
    return Call("DELETE", wire.path("item-types", api_key), wire.nothing)


def create_item(data: Mapping[str, Any]) -> Call[Item]:
    return Call("POST", "/items", wire.one(Item), body=_json({"data": data}))


def find_item(item_id: str) -> Call[Item]:
    return Call("GET", wire.path("items", item_id), wire.one(Item))


def update_item(
    item_id: str, changes: Mapping[str, Any], version: int | None
) -> Call[Item]:
    data = dict(changes)
    if version is not None:
        data["meta"] = {**data.get("meta", {}), "version": version}
    body = _json({"data": data})
    return Call("PATCH", wire.path("items", item_id), wire.one(Item), body=body)


def destroy_item(item_id: str) -> Call[None]:
    return Call("DELETE", wire.path("items", item_id), wire.nothing)


def _page_offset(page: Mapping[str, Any] | None) -> int:
    return int((page or {}).get("offset") or 0)


def list_items(
    filter: Mapping[str, Any] | None,
    order_by: str | Sequence[str] | None,
    page: Mapping[str, Any] | None,
) -> Call[Page[Item]]:
    params: Params = [
        *encode_param("filter", filter),
        *encode_order_by(order_by),
        *encode_param("page", page),
    ]
    return Call("GET", "/items", wire.many(Item, _page_offset(page)), params=params)


def control_options(
    *,
    retain_for: int | None = None,
    atomic: bool = False,
    max_errors: int | None = None,
    max_error_rate: float | None = None,
) -> dict[str, Any]:
    """The job-control options that were given, as the server names them."""
    given = {
        "retain_for": retain_for,
        "atomic": atomic or None,
        "max_errors": max_errors,
        "max_error_rate": max_error_rate,
    }
    return {k: v for k, v in given.items() if v is not None}


def bulk_create(
    data: Iterable[Any] | AsyncIterable[Any],
    skip_duplicates: bool,
    link_by: Mapping[str, str] | None,
    chunk_size: int | None,
    on_upload: UploadCallback | None,
    timeout_seconds: float | None = None,
    control: Mapping[str, Any] | None = None,
    *,
    dry_run: bool = False,
) -> Call[Job]:
    body_options, query_options = wire.bulk_options(
        skip_duplicates, link_by, chunk_size, timeout_seconds, control
    )
    if dry_run:
        body_options["dry_run"] = True
        query_options.append(("dry_run", "true"))
    return wire.bulk_call(
        "/items/bulk-create-jobs",
        data,
        body_options=body_options,
        query_options=query_options,
        on_upload=on_upload,
    )


def _body_options(
    chunk_size: int | None,
    timeout_seconds: float | None,
    dry_run: bool,
    control: Mapping[str, Any] | None,
) -> dict[str, Any]:
    body, _query = wire.bulk_options(None, None, chunk_size, timeout_seconds, control)
    if dry_run:
        body["dry_run"] = True
    return body


def bulk_update(
    data: Iterable[Any] | AsyncIterable[Any] | Mapping[str, Any],
    chunk_size: int | None,
    on_upload: UploadCallback | None,
    timeout_seconds: float | None = None,
    control: Mapping[str, Any] | None = None,
    *,
    filter: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> Call[Job]:
    endpoint = "/items/bulk-update-jobs"
    if filter is not None:
        if not isinstance(data, Mapping):
            raise TypeError("with filter, data is the mapping of attributes to set")
        options = _body_options(chunk_size, timeout_seconds, dry_run, control)
        body = {"filter": dict(filter), "data": dict(data), **options}
        return Call("POST", endpoint, wire.one(Job), body=_json(body))
    if isinstance(data, Mapping):
        raise TypeError(
            'data is a list of {"id", "attributes"} changes; to set the same '
            "attributes on every item a filter matches, give filter too"
        )
    body_options, query_options = wire.bulk_options(
        None, None, chunk_size, timeout_seconds, control
    )
    if dry_run:
        body_options["dry_run"] = True
        query_options.append(("dry_run", "true"))
    return wire.bulk_call(
        endpoint,
        data,
        body_options=body_options,
        query_options=query_options,
        on_upload=on_upload,
    )


def bulk_destroy(
    items: Iterable[str] | None,
    chunk_size: int | None,
    timeout_seconds: float | None = None,
    control: Mapping[str, Any] | None = None,
    *,
    filter: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> Call[Job]:
    if (items is None) == (filter is None):
        raise TypeError("give either items (ids) or filter")
    options = _body_options(chunk_size, timeout_seconds, dry_run, control)
    selection: dict[str, Any] = (
        {"items": list(items)} if items is not None else {"filter": dict(filter or {})}
    )
    body = {**selection, **options}
    return Call("POST", "/items/bulk-destroy-jobs", wire.one(Job), body=_json(body))


#: The content type an import sends for each format.
IMPORT_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json"}
_SUFFIX_FORMATS |= {".ndjson": "ndjson", ".jsonl": "ndjson"}
_READ_SIZE = 1 << 16


def import_format(name: str, given: str | None) -> str:
    """The format of an import file: as given, else by its file name."""
    if given is not None:
        if given not in IMPORT_TYPES:
            raise ValueError(f"format must be csv, json or ndjson, not {given!r}")
        return given
    for suffix, found in _SUFFIX_FORMATS.items():
        if name.lower().endswith(suffix):
            return found
    raise ValueError(
        f"cannot tell the format of {name!r} from its name; give format="
        "'csv', 'json' or 'ndjson'"
    )


def _file_chunks(source: BinaryIO, on_upload: UploadCallback | None) -> Iterator[bytes]:
    sent = 0
    while chunk := source.read(_READ_SIZE):
        sent += len(chunk)
        yield chunk
        if on_upload is not None:
            on_upload(sent)


def import_options(**options: Any) -> dict[str, Any]:
    """The options of an import, as the server names them."""
    return {k: v for k, v in options.items() if v is not None and v is not False}


@contextmanager
def open_source(
    source: str | os.PathLike[str] | BinaryIO,
) -> Iterator[tuple[BinaryIO, str]]:
    """The file to upload, opened if given by path, with its name."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as stream:
            yield stream, os.fspath(source)
    else:
        yield source, str(getattr(source, "name", ""))


async def _afile_chunks(
    source: BinaryIO, on_upload: UploadCallback | None
) -> AsyncIterator[bytes]:
    for chunk in _file_chunks(source, on_upload):
        yield chunk


def import_file(
    source: BinaryIO,
    file_format: str,
    options: Mapping[str, Any],
    on_upload: UploadCallback | None,
    *,
    as_async: bool = False,
) -> Call[Job]:
    params: Params = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        if isinstance(value, Mapping):
            params += encode_param(key, value)
        elif value is True:
            params.append((key, "true"))
        else:
            params.append((key, str(value)))
    return Call(
        "POST",
        "/items/import-jobs",
        wire.one(Job),
        params=params,
        stream=_chunks_of(source, on_upload, as_async),
        content_type=IMPORT_TYPES[file_format],
        restart=_rereader(source, on_upload, as_async),
    )


def _chunks_of(
    source: BinaryIO, on_upload: UploadCallback | None, as_async: bool
) -> Iterable[bytes] | AsyncIterable[bytes]:
    if as_async:
        return _afile_chunks(source, on_upload)
    return _file_chunks(source, on_upload)


def _rereader(
    source: BinaryIO, on_upload: UploadCallback | None, as_async: bool
) -> Callable[[], Iterable[bytes] | AsyncIterable[bytes]] | None:
    """How to read a file again from where its upload started, if it can
    be (a file on disk can; a pipe cannot)."""
    try:
        start = source.tell() if source.seekable() else None
    except OSError:
        start = None
    if start is None:
        return None
    at = start

    def restart() -> Iterable[bytes] | AsyncIterable[bytes]:
        source.seek(at)
        return _chunks_of(source, on_upload, as_async)

    return restart


def migrate(
    from_type: str,
    to_type: str,
    *,
    filter: Mapping[str, Any] | None,
    mapping: Mapping[str, str | None] | None,
    constants: Mapping[str, Any] | None,
    delete_source: bool,
    dry_run: bool,
    chunk_size: int | None,
    timeout_seconds: float | None = None,
    control: Mapping[str, Any] | None = None,
) -> Call[Job]:
    body: dict[str, Any] = {
        "from": from_type,
        "to": to_type,
        "mapping": dict(mapping or {}),
        "constants": dict(constants or {}),
        "delete_source": delete_source,
        "dry_run": dry_run,
    }
    if filter is not None:
        body["filter"] = dict(filter)
    if chunk_size is not None:
        body["chunk_size"] = chunk_size
    if timeout_seconds is not None:
        body["timeout_seconds"] = timeout_seconds
    body.update(control or {})
    return Call("POST", "/items/migrate-jobs", wire.one(Job), body=_json(body))


def export_job(
    filter: Mapping[str, Any] | None,
    format: str,
    fields: Sequence[str] | None,
    order_by: str | None,
    include_relationships: bool | int,
    url_ttl: int | None,
    bom: bool,
    delimiter: str | None,
    timeout_seconds: float | None = None,
    retain_for: int | None = None,
) -> Call[Job]:
    body: dict[str, Any] = {
        "format": format,
        "include_relationships": include_relationships,
    }
    optional = {
        "filter": filter,
        "fields": list(fields) if fields is not None else None,
        "order_by": order_by,
        "url_ttl": url_ttl,
        "delimiter": delimiter,
        "bom": bom or None,
        "timeout_seconds": timeout_seconds,
        "retain_for": retain_for,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return Call("POST", "/items/export-jobs", wire.one(Job), body=_json(body))


def export_url(job: str | Job, url_ttl: int | None) -> Call[ExportLink]:
    body = _json({} if url_ttl is None else {"url_ttl": url_ttl})
    return Call(
        "POST",
        wire.path("jobs", job_id(job), "export-url"),
        wire.one(ExportLink),
        body=body,
    )


def retry_job(job: str | Job, fixes: Mapping[int, Any]) -> Call[Job]:
    body = {"fix": {str(index): value for index, value in fixes.items()}}
    return Call(
        "POST",
        wire.path("jobs", job_id(job), "retry"),
        wire.one(Job),
        body=_json(body if fixes else {}),
    )


def cancel_job(job: str | Job) -> Call[Job]:
    return Call("POST", wire.path("jobs", job_id(job), "cancel"), wire.one(Job))


def unprocessed(job: str | Job) -> Call[list[Any]]:
    return Call("GET", wire.path("jobs", job_id(job), "unprocessed"), wire.ndjson)


def find_job(job: str | Job) -> Call[Job]:
    return Call("GET", wire.path("jobs", job_id(job)), wire.one(Job))


def delete_job(job: str | Job) -> Call[None]:
    return Call("DELETE", wire.path("jobs", job_id(job)), wire.nothing)


def purge_jobs() -> Call[Page[Job]]:
    return Call("POST", "/jobs/purge", wire.many(Job, 0))


def list_jobs(
    filter: Mapping[str, Any] | None, page: Mapping[str, Any] | None
) -> Call[Page[Job]]:
    params = [*encode_param("filter", filter), *encode_param("page", page)]
    return Call("GET", "/jobs", wire.many(Job, _page_offset(page)), params=params)


def job_entries(
    job: str | Job, entries: JobEntries, offset: int, limit: int
) -> Call[Page[Any]]:
    # A failed item's input is whatever was sent: not always an object.
    kinds: dict[str, Any] = {"errors": JobItemError, "data": Item, "failed-items": Any}
    kind = kinds[entries]
    params = [("page[limit]", str(limit)), ("page[offset]", str(offset))]
    return Call(
        "GET",
        wire.path("jobs", job_id(job), entries),
        wire.many(kind, offset),
        params=params,
    )


def job_id(job: str | Job) -> str:
    return job.id if isinstance(job, Job) else job
