from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from lorry.api.body import MAX_SMALL_BODY, check_json_type, decode_json, read_body
from lorry.api.creation import Idempotency, create_job
from lorry.api.deps import CurrentToken, RuntimeDep, require
from lorry.api.query import nested_params, page_params
from lorry.api.responses import JSONResponse
from lorry.errors import ApiError
from lorry.jobs import control, export, render, retention
from lorry.jobs.model import FINAL_STATUSES, KINDS, STATUSES
from lorry.jobs.retry import check_fixes, stage_retry

router = APIRouter(tags=["jobs"], dependencies=[require("reader")])

_PAGE_MAX = 1000


def _list_filter(value: Any, name: str, allowed: tuple[str, ...]) -> list[str]:
    if value is None:
        return []
    values = [v for v in str(value).split(",") if v]
    for v in values:
        if v not in allowed:
            raise ApiError.one(
                400,
                "invalid_filter",
                f"filter[{name}]: {v!r} is not one of {', '.join(allowed)}",
                parameter=f"filter[{name}]",
            )
    return values


@router.get("/jobs")
def list_jobs(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    params = nested_params(request.query_params.multi_items())
    limit, offset = page_params(params, 30, 500)
    filters = params.get("filter", {})
    if not isinstance(filters, dict):
        raise ApiError.one(400, "invalid_filter", "use filter[...]", parameter="filter")
    statuses = _list_filter(filters.get("status"), "status", STATUSES)
    kinds = _list_filter(filters.get("kind"), "kind", KINDS)
    with runtime.db.read() as conn:
        rows, total = render.list_rows(conn, statuses, kinds, limit, offset)
        data = [render.job_resource(conn, r, with_result=False) for r in rows]
    return {"data": data, "meta": {"total_count": total}}


def _job_row(conn: Any, job_id: str) -> Any:
    row = render.find_row(conn, job_id)
    if row is None:
        raise ApiError.not_found("job", job_id)
    return row


@router.get("/jobs/{job_id}")
def show_job(job_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.db.read() as conn:
        return {"data": render.job_resource(conn, _job_row(conn, job_id))}


def _paged(request: Request) -> tuple[int, int]:
    params = nested_params(request.query_params.multi_items())
    return page_params(params, 100, _PAGE_MAX)


@router.get("/jobs/{job_id}/data")
def job_data(job_id: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Every item the job created or changed, in input order."""
    limit, offset = _paged(request)
    with runtime.db.read() as conn:
        data, total = render.data_page(conn, _job_row(conn, job_id), limit, offset)
    return {"data": data, "meta": {"total_count": total}}


@router.get("/jobs/{job_id}/errors")
def job_errors(job_id: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Every per-item error of the job, in input order."""
    limit, offset = _paged(request)
    with runtime.db.read() as conn:
        _job_row(conn, job_id)
        errors, total = render.errors_page(conn, job_id, limit, offset)
    return {"data": errors, "meta": {"total_count": total}}


@router.get("/jobs/{job_id}/failed-items", response_model=None)
def failed_items(
    job_id: str, request: Request, runtime: RuntimeDep
) -> dict[str, Any] | Response:
    """The input of every failed item, ready to fix and submit again."""
    if request.query_params.get("format") == "ndjson":
        with runtime.db.read() as conn:
            _job_row(conn, job_id)
            inputs, _ = render.failed_inputs(conn, job_id, 2**31 - 1, 0)
        body = b"".join(msgspec.json.encode(v) + b"\n" for v in inputs)
        return Response(body, media_type="application/x-ndjson")
    limit, offset = _paged(request)
    with runtime.db.read() as conn:
        _job_row(conn, job_id)
        inputs, total = render.failed_inputs(conn, job_id, limit, offset)
    return {"data": inputs, "meta": {"total_count": total}}


@router.post("/jobs/{job_id}/retry", status_code=202, dependencies=[require("editor")])
async def retry_job(
    job_id: str, request: Request, runtime: RuntimeDep, token: CurrentToken
) -> JSONResponse:
    """Run the failed items of a finished job again, as a new job (202).

    Body, optional: ``{"fix": {"INDEX": input}}`` replaces the input of the
    failed item at that index (the ``index`` of its error) with corrected
    data. The new job links to this one (``parent_job_id``), and this one
    lists it among its ``retries``.
    """
    idem = await Idempotency.of(request, runtime, token.id)
    body = await read_body(request, MAX_SMALL_BODY)
    idem.update(body)
    if idem.prior is not None:
        return await idem.replay(runtime)
    raw: dict[str, Any] = {}
    if body.strip():
        check_json_type(request)
        raw = decode_json(body, dict[str, Any], "/", "the body must be a JSON object")
    unknown = sorted(set(raw) - {"fix"})
    if unknown:
        raise ApiError.one(
            422,
            "invalid_option",
            f"unknown option {unknown[0]!r}; allowed: fix",
            pointer=f"/{unknown[0]}",
        )
    fixes = check_fixes(raw.get("fix"))

    async def stage() -> str:
        return await run_in_threadpool(
            stage_retry,
            runtime.db,
            runtime.settings,
            job_id,
            fixes,
            token.id,
            idem.claim,
        )

    return await create_job(runtime, idem, stage)


@router.post("/jobs/{job_id}/cancel", dependencies=[require("editor")])
async def cancel_job(job_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    """Stop a queued or running job; it ends ``cancelled`` at once.

    What its chunks applied stays applied; the chunks that had not run never
    run, and their input is at ``/jobs/{id}/unprocessed``.
    """

    def work() -> dict[str, Any]:
        control.cancel(runtime.db, job_id, runtime.settings.job_retention_days)
        with runtime.db.read() as conn:
            return render.job_resource(conn, _job_row(conn, job_id))

    resource = await run_in_threadpool(work)
    if resource["attributes"]["kind"] == "export":
        # Its worker removes its own temporary file when it sees the cancel;
        # this is for a run whose commit failed after its file's rename.
        export.export_file(
            runtime.settings, job_id, resource["attributes"]["options"]["format"]
        ).unlink(missing_ok=True)
    return {"data": resource}


@router.get("/jobs/{job_id}/unprocessed", response_model=None)
def unprocessed(job_id: str, runtime: RuntimeDep) -> StreamingResponse:
    """The input of every item that never ran, as NDJSON, in input order."""
    with runtime.db.read() as conn:
        row = _job_row(conn, job_id)
    if row.status not in FINAL_STATUSES:
        raise ApiError.one(
            409,
            "job_active",
            f"job {job_id} is {row.status}; its unprocessed items are known "
            "once it has ended",
        )
    lines = (
        b"".join(entry + b"\n" for entry in chunk)
        for chunk in control.unprocessed_chunks(runtime.db, job_id)
    )
    return StreamingResponse(lines, media_type="application/x-ndjson")


@router.delete("/jobs/{job_id}", status_code=204, dependencies=[require("editor")])
def delete_job(job_id: str, runtime: RuntimeDep) -> Response:
    """Forget a finished job: its chunks and staged input, its errors, what it
    migrated and, for an export, its file."""
    with runtime.db.read() as conn:
        _job_row(conn, job_id)  # a job still being staged is not shown
    try:
        removed = retention.remove_job(runtime.db, runtime.settings, job_id)
    except retention.JobActive as exc:
        raise ApiError.one(
            409,
            "job_active",
            f"job {job_id} is {exc.status}; wait for its end, or cancel it",
        ) from None
    if removed is None:
        raise ApiError.not_found("job", job_id)
    return Response(status_code=204)


@router.post("/jobs/purge", dependencies=[require("admin")])
def purge_jobs(runtime: RuntimeDep) -> dict[str, Any]:
    """Remove every finished job whose retention has run out, now; answer
    with the jobs removed (without their results, which are gone)."""
    rows = retention.purge(runtime.db, runtime.settings)
    with runtime.db.read() as conn:
        data = [render.job_resource(conn, r, with_result=False) for r in rows]
    return {"data": data, "meta": {"total_count": len(data)}}
