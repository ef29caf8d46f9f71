"""The bulk job endpoints: accept, stage, answer 202.

JSON bodies are read whole (up to a limit); NDJSON bodies are streamed line by
line into chunks, so the server never holds a large job in memory.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from lorry.api.body import content_type, decode_json, read_body
from lorry.api.creation import Idempotency, create_job
from lorry.api.deps import CurrentToken, RuntimeDep, require
from lorry.api.query import nested_params
from lorry.api.responses import JSONResponse
from lorry.errors import ApiError
from lorry.jobs.by_filter import stage_by_filter
from lorry.jobs.options import check_options
from lorry.jobs.staging import Stager
from lorry.server import Runtime

router = APIRouter(tags=["bulk jobs"])
log = logging.getLogger(__name__)

NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl"}
_LIST_KEY = {"bulk_create": "data", "bulk_update": "data", "bulk_destroy": "items"}


def _split_json(body: bytes, kind: str) -> tuple[dict[str, Any], list[msgspec.Raw]]:
    if not body.strip():
        raise ApiError.invalid("the request has no body", code="empty_body")
    key = _LIST_KEY[kind]
    envelope = decode_json(
        body, dict[str, msgspec.Raw], "/", "the body must be a JSON object"
    )
    if key not in envelope:
        raise ApiError.invalid(
            f"the body has no {key!r} list", pointer=f"/{key}", code="empty_job"
        )
    entries = decode_json(
        envelope.pop(key), list[msgspec.Raw], f"/{key}", f"{key!r} must be a list"
    )
    options = {k: decode_json(v, Any, f"/{k}") for k, v in envelope.items()}
    return options, entries


def _by_filter(body: bytes) -> dict[str, Any] | None:
    """The body as options if it selects its items by ``filter``, else None."""
    if not body.strip():
        return None
    envelope = decode_json(
        body, dict[str, msgspec.Raw], "/", "the body must be a JSON object"
    )
    if "filter" not in envelope:
        return None
    return {k: decode_json(v, Any, f"/{k}") for k, v in envelope.items()}


async def _accept_by_filter(
    runtime: Runtime,
    token_id: str,
    kind: str,
    raw: dict[str, Any],
    idem: Idempotency,
) -> JSONResponse:
    async def stage() -> str:
        return await run_in_threadpool(
            stage_by_filter,
            runtime.db,
            runtime.settings,
            kind,
            raw,
            token_id,
            idem.claim,
        )

    return await create_job(runtime, idem, stage)


class _Lines:
    """Splits a byte stream into lines, without keeping an overlong one."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._tail = b""
        self._overlong = 0

    def feed(self, data: bytes) -> list[bytes]:
        parts = (self._tail + data).split(b"\n")
        self._tail = parts.pop()
        if len(self._tail) > self.max_line:
            # Keep a prefix for the error report; drop the rest as it comes.
            self._overlong += len(self._tail)
            self._tail = self._tail[: self.max_line + 1]
        return parts

    def end(self) -> list[bytes]:
        tail, self._tail = self._tail, b""
        return [tail] if tail.strip() else []


async def _stage_ndjson(
    request: Request, runtime: Runtime, stager: Stager, idem: Idempotency
) -> None:
    lines = _Lines(runtime.settings.max_item_bytes)
    received = 0
    stream: AsyncIterator[bytes] = request.stream()
    async for part in stream:
        idem.update(part)
        received += len(part)
        if received > runtime.settings.max_body_bytes:
            raise ApiError.one(
                413,
                "body_too_large",
                f"the body is larger than {runtime.settings.max_body_bytes} bytes",
            )
        fed = lines.feed(part)
        if not all(map(bytes.strip, fed)):  # blank lines hold no item; skip them
            fed = [line for line in fed if line.strip()]
        stager.add_many(fed)
        if stager.wants_flush:
            await run_in_threadpool(stager.flush)
    for line in lines.end():
        stager.add(line)


async def _accept(
    request: Request, runtime: Runtime, token_id: str, kind: str
) -> JSONResponse:
    ctype = content_type(request)
    streamed = ctype in NDJSON_TYPES
    if not streamed and ctype not in ("application/json", ""):
        raise ApiError.one(
            415,
            "unsupported_media_type",
            f"send application/json or application/x-ndjson, not {ctype!r}",
        )
    idem = await Idempotency.of(request, runtime, token_id)
    body = b""
    if streamed and idem.prior is not None:
        await idem.drain(request, runtime.settings.max_body_bytes)
    elif not streamed:
        body = await read_body(
            request,
            runtime.settings.max_json_bytes,
            "; send larger jobs as NDJSON (Content-Type: application/x-ndjson)",
        )
        idem.update(body)
    if idem.prior is not None:
        return await idem.replay(runtime)
    if streamed:
        raw_options: dict[str, Any] = nested_params(request.query_params.multi_items())
        entries: list[msgspec.Raw] = []
    elif kind != "bulk_create" and (selection := _by_filter(body)) is not None:
        return await _accept_by_filter(runtime, token_id, kind, selection, idem)
    else:
        raw_options, entries = _split_json(body, kind)

    def open_stager() -> Stager:
        with runtime.db.read() as conn:
            options = check_options(conn, kind, raw_options, in_query=streamed)
        chunk_size = options.get("chunk_size") or runtime.settings.chunk_size
        return Stager(runtime.db, runtime.settings, kind, options, chunk_size, token_id)

    async def stage() -> str:
        stager = await run_in_threadpool(open_stager)
        try:
            if streamed:
                await _stage_ndjson(request, runtime, stager, idem)
            else:
                step = 8 * stager.chunk_size
                for start in range(0, len(entries), step):
                    stager.add_many([bytes(e) for e in entries[start : start + step]])
                    if stager.wants_flush:
                        await run_in_threadpool(stager.flush)
            return await run_in_threadpool(stager.finish, None, idem.claim)
        except BaseException:
            await run_in_threadpool(stager.abort)
            raise

    return await create_job(runtime, idem, stage)


@router.post(
    "/items/bulk-create-jobs", status_code=202, dependencies=[require("editor")]
)
async def bulk_create(
    request: Request, runtime: RuntimeDep, token: CurrentToken
) -> JSONResponse:
    """Create many items in the background; answers 202 with the job."""
    return await _accept(request, runtime, token.id, "bulk_create")


@router.post(
    "/items/bulk-update-jobs", status_code=202, dependencies=[require("editor")]
)
async def bulk_update(
    request: Request, runtime: RuntimeDep, token: CurrentToken
) -> JSONResponse:
    """Change many items in the background; answers 202 with the job.

    Body: ``data``, a list of ``{"id", "attributes"}``; or ``filter`` with
    ``data``, the attributes to set on every item the filter matches."""
    return await _accept(request, runtime, token.id, "bulk_update")


@router.post(
    "/items/bulk-destroy-jobs", status_code=202, dependencies=[require("editor")]
)
async def bulk_destroy(
    request: Request, runtime: RuntimeDep, token: CurrentToken
) -> JSONResponse:
    """Destroy many items in the background; answers 202 with the job.

    Body: ``items``, a list of ids; or ``filter``, the items it matches."""
    return await _accept(request, runtime, token.id, "bulk_destroy")
