"""Export jobs: accepting one, downloading its file, re-signing its URL.

The download answers without an API token: its signed URL is the
credential, so that the link can be handed to a browser or a backup job.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse

from lorry.api.body import MAX_SMALL_BODY, check_json_type, decode_json, read_body
from lorry.api.creation import Idempotency, create_job
from lorry.api.deps import CurrentToken, RuntimeDep, require
from lorry.api.responses import JSONResponse
from lorry.errors import ApiError
from lorry.jobs import export, render, signing
from lorry.jobs.control import with_default_timeout
from lorry.jobs.export_formats import CONTENT_TYPES
from lorry.jobs.options import check_export_options, check_url_ttl
from lorry.server import Runtime

router = APIRouter(tags=["exports"])
log = logging.getLogger(__name__)


async def _json_object(request: Request, *, required: bool) -> dict[str, Any]:
    return _parse_object(request, await read_body(request, MAX_SMALL_BODY), required)


def _parse_object(request: Request, body: bytes, required: bool) -> dict[str, Any]:
    if not body.strip():
        if required:
            raise ApiError.invalid("the request has no body", code="empty_body")
        return {}
    check_json_type(request)
    decoded: dict[str, Any] = decode_json(
        body, dict[str, Any], "/", "the body must be a JSON object"
    )
    return decoded


@router.post("/items/export-jobs", status_code=202, dependencies=[require("reader")])
async def export_job(
    request: Request, runtime: RuntimeDep, token: CurrentToken
) -> JSONResponse:
    """Export the items a filter selects to a file; answers 202 with the job."""
    idem = await Idempotency.of(request, runtime, token.id)
    body = await read_body(request, MAX_SMALL_BODY)
    idem.update(body)
    if idem.prior is not None:
        return await idem.replay(runtime)
    raw = _parse_object(request, body, required=False)

    def work() -> str:
        with runtime.db.read() as conn:
            options = check_export_options(
                conn, runtime.db.dialect, raw, runtime.settings.export_url_ttl
            )
        options = with_default_timeout(options, runtime.settings.job_timeout_seconds)
        return export.accept(runtime.db, options, token.id, idem.claim)

    async def stage() -> str:
        return await run_in_threadpool(work)

    return await create_job(runtime, idem, stage)


def _finished_export(runtime: Runtime, job_id: str) -> tuple[Any, Path]:
    """The row of a completed export and its file; 404 if either is gone."""
    with runtime.db.read() as conn:
        row = render.find_row(conn, job_id)
    export_info = (row.details or {}).get("export") if row is not None else None
    if row is None or row.kind != "export":
        raise ApiError.not_found("export job", job_id)
    if row.status != "completed" or not export_info:
        raise ApiError.one(
            409, "export_not_ready", f"export job {job_id} is {row.status}"
        )
    path = runtime.settings.exports_dir / export_info["file"]
    if not path.is_file():
        raise ApiError.one(
            404, "export_file_gone", f"the file of export job {job_id} is gone"
        )
    return row, path


@router.post("/jobs/{job_id}/export-url", dependencies=[require("reader")])
async def resign(job_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    """A fresh signed download URL for a finished export (body: ``url_ttl``)."""
    raw = await _json_object(request, required=False)
    unknown = sorted(set(raw) - {"url_ttl"})
    if unknown:
        raise ApiError.one(
            422,
            "invalid_option",
            f"unknown option {unknown[0]!r}; allowed: url_ttl",
            pointer=f"/{unknown[0]}",
        )

    def work() -> dict[str, Any]:
        row, _path = _finished_export(runtime, job_id)
        ttl = check_url_ttl(
            raw.get("url_ttl", row.options.get("url_ttl")),
            runtime.settings.export_url_ttl,
        )
        url, expires_at = export.sign_url(runtime.settings, job_id, ttl)
        return {"url": url, "expires_at": expires_at}

    return JSONResponse({"data": await run_in_threadpool(work)})


@router.get("/exports/{token}", response_model=None)
def download(token: str, runtime: RuntimeDep) -> FileResponse:
    """The file of an export, for whoever holds a valid signed URL."""
    secret = signing.server_secret(runtime.settings)
    try:
        job_id = signing.verify(secret, token)
    except signing.InvalidLink as exc:
        raise ApiError.one(403, "invalid_signature", str(exc)) from None
    except signing.ExpiredLink as exc:
        raise ApiError.one(403, "url_expired", str(exc)) from None
    row, path = _finished_export(runtime, job_id)
    export_info = row.details["export"]
    return FileResponse(
        path,
        media_type=CONTENT_TYPES[export_info["format"]],
        filename=path.name,
        headers={"X-Content-SHA256": export_info["sha256"]},
    )


# HEAD asks what GET would send (size, checksum, type) without the body; it
# is the same operation, so the OpenAPI document lists it once.
router.add_api_route(
    "/exports/{token}",
    download,
    methods=["HEAD"],
    response_model=None,
    include_in_schema=False,
)
