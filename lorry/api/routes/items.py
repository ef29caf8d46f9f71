from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import msgspec
import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from lorry.api.body import decode_body
from lorry.api.deps import RuntimeDep, require
from lorry.api.query import nested_params, page_params
from lorry.errors import ApiError
from lorry.jobs import create, destroy, update
from lorry.jobs.context import ChunkOutcome, JobContext
from lorry.jobs.model import ChunkInput
from lorry.schema.validator import ItemFailure
from lorry.server import Runtime
from lorry.store import item_types as type_store
from lorry.store import items as item_store
from lorry.store.selection import select_items

router = APIRouter(tags=["items"])

MAX_PAGE = 500


class _Envelope(msgspec.Struct):
    data: msgspec.Raw


class _PatchData(msgspec.Struct):
    data: dict[str, Any]


def _failure_error(failure: ItemFailure) -> ApiError:
    status = {
        "not_found": 404,
        "stale_version": 409,
        "not_unique": 409,
        "in_use": 409,
    }.get(failure.code, 422)
    pointer = f"/data/{failure.field.replace('.', '/')}" if failure.field else "/data"
    if failure.code in ("not_found", "in_use"):
        return ApiError.one(status, failure.code, failure.message)
    return ApiError.one(status, failure.code, failure.message, pointer=pointer)


def _render_one(conn: sa.Connection, item_id: str) -> dict[str, Any]:
    row = item_store.get_row(conn, item_id)
    if row is None:
        raise ApiError.not_found("item", item_id)
    type_keys = type_store.type_keys(conn)
    return item_store.render(row, type_keys)


def _single(runtime: Runtime, kind: str, raw: bytes) -> ChunkOutcome:
    module = {"bulk_create": create, "bulk_update": update, "bulk_destroy": destroy}[
        kind
    ]
    with runtime.db.write() as conn:
        types = type_store.load_all(conn)
        ctx = JobContext.build(None, kind, {}, runtime.db.dialect, types)
        prepared = module.prepare(ctx, ChunkInput(0, 0, [raw]))
        outcome: ChunkOutcome = module.apply(conn, ctx, prepared)
        if outcome.failures:
            raise _failure_error(outcome.failures[0][2])
    return outcome


@router.post("/items", status_code=201, dependencies=[require("editor")])
async def create_item(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    body = await decode_body(request, _Envelope)

    def work() -> dict[str, Any]:
        outcome = _single(runtime, "bulk_create", bytes(body.data))
        with runtime.db.read() as conn:
            return {"data": _render_one(conn, outcome.applied[0][1])}

    # Writes wait for the write lock: never on the event loop.
    return await run_in_threadpool(work)


@router.get("/items/{item_id}", dependencies=[require("reader")])
def show_item(item_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.db.read() as conn:
        return {"data": _render_one(conn, item_id)}


@router.patch("/items/{item_id}", dependencies=[require("editor")])
async def update_item(
    item_id: str, request: Request, runtime: RuntimeDep
) -> dict[str, Any]:
    body = await decode_body(request, _PatchData)
    attributes = dict(body.data)
    meta = attributes.pop("meta", None)
    for key in ("id", "created_at", "updated_at"):
        attributes.pop(key, None)
    entry: dict[str, Any] = {"id": item_id, "attributes": attributes}
    if meta is not None:
        if not isinstance(meta, dict):
            raise ApiError.invalid("meta must be an object", pointer="/data/meta")
        if "version" in meta:
            version = meta["version"]
            if not isinstance(version, int) or isinstance(version, bool):
                raise ApiError.invalid(
                    f"meta.version must be an integer, not {version!r}",
                    pointer="/data/meta/version",
                )
            entry["meta"] = {"version": version}

    def work() -> dict[str, Any]:
        _single(runtime, "bulk_update", msgspec.json.encode(entry))
        with runtime.db.read() as conn:
            return {"data": _render_one(conn, item_id)}

    return await run_in_threadpool(work)


@router.delete("/items/{item_id}", status_code=204, dependencies=[require("editor")])
def delete_item(item_id: str, runtime: RuntimeDep) -> Response:
    _single(runtime, "bulk_destroy", msgspec.json.encode(item_id))
    return Response(status_code=204)


@router.get("/items", dependencies=[require("reader")])
def list_items(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    params = nested_params(request.query_params.multi_items())
    limit, offset = page_params(params, 30, MAX_PAGE)
    with runtime.db.read() as conn:
        chosen = select_items(
            conn,
            runtime.db.dialect,
            params.get("filter", {}),
            params.get("order_by"),
            max_ids=MAX_PAGE,
        )
        rows, total = item_store.list_rows(
            conn, chosen.where, chosen.order, limit, offset
        )
        type_keys = type_store.type_keys(conn)
        data = [item_store.render(r, type_keys) for r in rows]
    next_link = None
    if offset + len(data) < total:
        query = request.query_params.multi_items()
        kept = [(k, v) for k, v in query if k != "page[offset]"]
        kept.append(("page[offset]", str(offset + len(data))))
        next_link = f"{request.url.path}?{urlencode(kept)}"
    return {
        "data": data,
        "meta": {"total_count": total},
        "links": {"next": next_link},
    }
