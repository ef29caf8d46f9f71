"""Migration jobs: the items of one type rewritten as items of another.

The body names the types, the filter and the field mapping; nothing is
uploaded. At accept the selected items' ids are read in one snapshot and
staged like any bulk job's input, so that the job migrates exactly the
items that matched when it was accepted, each once.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from lorry.api.body import MAX_SMALL_BODY, parse_body, read_body
from lorry.api.creation import Idempotency, create_job
from lorry.api.deps import CurrentToken, RuntimeDep, require
from lorry.api.responses import JSONResponse
from lorry.errors import ApiError
from lorry.jobs.idempotency import KeyClaim
from lorry.jobs.migration import field_plan, selected_ids
from lorry.jobs.options import check_options
from lorry.jobs.staging import Stager
from lorry.server import Runtime
from lorry.store import item_types as type_store

router = APIRouter(tags=["bulk jobs"])
log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode


def _stage(
    runtime: Runtime, raw: dict[str, Any], token_id: str, key: KeyClaim | None
) -> str:
    with runtime.db.read() as conn:
        options = check_options(conn, "migrate", raw, in_query=False)
        plan = field_plan(type_store.load_all(conn), options)
        ids = selected_ids(conn, runtime.db.dialect, options)
    if not ids:
        raise ApiError.invalid(
            f"no {options['from']!r} item matches the filter; nothing to migrate",
            pointer="/filter",
            code="empty_job",
        )
    chunk_size = options.get("chunk_size") or runtime.settings.chunk_size
    stager = Stager(
        runtime.db, runtime.settings, "migrate", options, chunk_size, token_id
    )
    try:
        for item_id in ids:
            stager.add(_encode(item_id))
            if stager.wants_flush:
                stager.flush()
        return stager.finish({"field_map": plan.fields}, key)
    except BaseException:
        stager.abort()
        raise


@router.post("/items/migrate-jobs", status_code=202, dependencies=[require("editor")])
async def migrate_job(
    request: Request, runtime: RuntimeDep, token: CurrentToken
) -> JSONResponse:
    """Migrate the items of one type (``from``) to another (``to``); answers
    202 with the job. Body: from, to, filter, mapping (source field -> target
    field, or null to drop it), constants, delete_source, dry_run,
    chunk_size."""
    idem = await Idempotency.of(request, runtime, token.id)
    body = await read_body(request, MAX_SMALL_BODY)
    idem.update(body)
    if idem.prior is not None:
        return await idem.replay(runtime)
    raw: dict[str, Any] = parse_body(request, body, dict[str, Any])

    async def stage() -> str:
        return await run_in_threadpool(_stage, runtime, raw, token.id, idem.claim)

    return await create_job(runtime, idem, stage)
