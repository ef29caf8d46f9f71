from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from lorry.api.deps import RuntimeDep, require
from lorry.api.query import nested_params, page_params
from lorry.errors import ApiError
from lorry.jobs import render, retention
from lorry.jobs.model import KINDS, STATUSES

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
