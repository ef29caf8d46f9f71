"""Import jobs: a file (CSV, JSON array or NDJSON) streamed in, staged as
records, imported in the background.

The body is read as it arrives and cut into records (lorry.files), which are
staged in chunks like any bulk job's input; neither the file nor its records
are ever held whole.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from lorry.api.body import content_type
from lorry.api.creation import Idempotency, create_job
from lorry.api.deps import CurrentToken, RuntimeDep, require
from lorry.api.query import nested_params
from lorry.api.responses import JSONResponse
from lorry.api.routes.bulk import NDJSON_TYPES
from lorry.errors import ApiError, ErrorItem
from lorry.files import FileError, RecordReader, open_reader
from lorry.jobs.import_records import RecordPlan
from lorry.jobs.options import check_options
from lorry.jobs.staging import Stager
from lorry.schema.validator import ItemFailure
from lorry.server import Runtime
from lorry.store import item_types as type_store

router = APIRouter(tags=["bulk jobs"])
log = logging.getLogger(__name__)

_FORMATS = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/json": "json",
    **{t: "ndjson" for t in NDJSON_TYPES},
}
#: Body bytes gathered before they are parsed and staged off the event loop.
_BATCH_BYTES = 1 << 20


def _file_error(exc: FileError) -> ApiError:
    meta = {k: v for k, v in (("line", exc.line), ("byte", exc.byte)) if v is not None}
    item = ErrorItem.make(422, exc.code, exc.message)
    item.meta = meta or None
    return ApiError(422, [item])


class _Import:
    """One upload: its reader, its stager, and what the header told."""

    def __init__(self, runtime: Runtime, stager: Stager, reader: RecordReader) -> None:
        self.runtime = runtime
        self.stager = stager
        self.reader = reader
        self.header_checked = False
        self.unknown: list[str] = []

    def feed(self, data: bytes, end: bool = False) -> None:
        try:
            records = self.reader.feed(data) if data else []
            if end:
                records += self.reader.end()
        except FileError as exc:
            raise _file_error(exc) from None
        if not self.header_checked and self.reader.columns is not None:
            self._check_header(self.reader.columns)
        self.stager.add_records(records)
        if self.stager.wants_flush:
            self.stager.flush()

    def _check_header(self, columns: list[str]) -> None:
        """A CSV file's columns are known at once: say now what goes nowhere."""
        self.header_checked = True
        options = self.stager.options
        mapping = options.get("mapping") or {}
        missing = [c for c in mapping if c not in columns]
        if missing:
            raise ApiError.one(
                422,
                "invalid_option",
                f"mapping names columns the file does not have: {missing}",
                parameter=f"mapping[{missing[0]}]",
            )
        if "type" not in options:
            return
        with self.runtime.db.read() as conn:
            types = type_store.load_all(conn)
        plan = RecordPlan(types, options)
        header = plan.convert(dict.fromkeys(columns))
        if isinstance(header, ItemFailure) and header.code == "ambiguous_columns":
            raise ApiError.one(422, header.code, header.message, parameter="mapping")
        self.unknown = plan.unknown
        if self.unknown and options.get("unknown_columns") == "reject":
            raise ApiError.one(
                422,
                "unknown_columns",
                f"{options['type']!r} has no field for the columns {self.unknown}; "
                "map them (mapping[COLUMN]=FIELD), drop them (mapping[COLUMN]=) "
                "or let them be ignored (unknown_columns=ignore)",
                parameter="unknown_columns",
            )


@router.post("/items/import-jobs", status_code=202, dependencies=[require("editor")])
async def import_job(
    request: Request, runtime: RuntimeDep, token: CurrentToken
) -> JSONResponse:
    """Import a file (CSV, JSON array or NDJSON) as items; answers 202 with the
    job. Options are query parameters: type, format, mapping[COLUMN]=FIELD,
    skip_duplicates, upsert_by, link_by[FIELD]=TARGET_FIELD, dry_run,
    encoding, delimiter, decimal, thousands, unknown_columns, chunk_size."""
    params: dict[str, Any] = nested_params(request.query_params.multi_items())
    ctype = content_type(request)
    if "format" not in params and ctype in _FORMATS:
        params["format"] = _FORMATS[ctype]
    if "format" not in params:
        raise ApiError.one(
            415,
            "unsupported_media_type",
            "send text/csv, application/json or application/x-ndjson, "
            f"or say format=csv|json|ndjson (the body is {ctype or 'untyped'!r})",
        )
    if ctype == "text/tab-separated-values":
        params.setdefault("delimiter", "tab")
    idem = await Idempotency.of(request, runtime, token.id)
    if idem.prior is not None:
        await idem.drain(request, runtime.settings.max_body_bytes)
        return await idem.replay(runtime)

    def open_import() -> _Import:
        with runtime.db.read() as conn:
            options = check_options(conn, "import", params, in_query=True)
        chunk_size = options.get("chunk_size") or runtime.settings.chunk_size
        try:
            reader = open_reader(
                options["format"],
                encoding=options.get("encoding"),
                delimiter=options.get("delimiter"),
                max_item_bytes=runtime.settings.max_item_bytes,
            )
        except FileError as exc:
            raise _file_error(exc) from None
        stager = Stager(
            runtime.db, runtime.settings, "import", options, chunk_size, token.id
        )
        return _Import(runtime, stager, reader)

    async def stage() -> str:
        upload = await run_in_threadpool(open_import)
        try:
            await _receive(request, runtime, upload, idem)
            if upload.stager.count == 0:
                raise ApiError.invalid("the file holds no records", code="empty_job")
            details = {"unknown_columns": upload.unknown}
            return await run_in_threadpool(upload.stager.finish, details, idem.claim)
        except BaseException:
            await run_in_threadpool(upload.stager.abort)
            raise

    return await create_job(runtime, idem, stage)


async def _receive(
    request: Request, runtime: Runtime, upload: _Import, idem: Idempotency
) -> None:
    """Read the file as it arrives, staging its records a batch at a time."""
    limit = runtime.settings.max_body_bytes
    received = 0
    pending: list[bytes] = []
    pending_bytes = 0
    async for part in request.stream():
        idem.update(part)
        received += len(part)
        if received > limit:
            raise ApiError.one(
                413, "body_too_large", f"the file is larger than {limit} bytes"
            )
        pending.append(part)
        pending_bytes += len(part)
        if pending_bytes >= _BATCH_BYTES:
            await run_in_threadpool(upload.feed, b"".join(pending))
            pending, pending_bytes = [], 0
    await run_in_threadpool(upload.feed, b"".join(pending), True)
