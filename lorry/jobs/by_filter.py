"""Bulk update and bulk destroy by filter: the selection staged at accept.

Instead of a list of items, the body holds a ``filter`` (as for listing and
export) and, for an update, the ``data`` to set on every matching item. At
accept the matching items are counted, then their ids are read by one
statement (a snapshot on any database) and staged as the job's input like
any list of ids: the job touches exactly the items that matched when it was
accepted, each once, and items created later are left alone. From there on
the job runs, reports and retries as any update or destroy job does.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.config import Settings
from lorry.errors import ApiError, ErrorItem
from lorry.jobs.idempotency import KeyClaim
from lorry.jobs.options import MAX_EXPORT_IDS, check_options
from lorry.jobs.staging import Stager
from lorry.store.db import Database
from lorry.store.selection import select_items
from lorry.store.tables import items

__all__ = ["stage_by_filter"]

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode
#: Ids read from the selection per round trip while staging.
_BATCH = 5000
#: The keys a body by filter holds besides the job's options.
_SELECTION_KEYS = {"bulk_update": ("filter", "data"), "bulk_destroy": ("filter",)}


def _pointer(parameter: str) -> str:
    """``filter[fields][price][gt]`` as the JSON pointer ``/filter/fields/price/gt``."""
    head, _sep, rest = parameter.partition("[")
    steps = [head, *rest.rstrip("]").split("][")] if rest else [head]
    return "/" + "/".join(s for s in steps if s)


def _in_body(exc: ApiError) -> ApiError:
    """A filter error, located in the body: 422 at a pointer, not a parameter."""
    errors = []
    for item in exc.errors:
        parameter = (item.source or {}).get("parameter")
        pointer = _pointer(parameter) if parameter else "/filter"
        errors.append(ErrorItem.make(422, item.code, item.detail, pointer=pointer))
    return ApiError(422, errors)


def _check_body(kind: str, raw: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The filter, and for an update the data encoded once; 422 if malformed."""
    filters = raw["filter"]
    if not isinstance(filters, dict) or not filters:
        raise ApiError.invalid(
            "filter must be an object naming type, ids or fields; an update or "
            "destroy by filter never selects every item by default",
            pointer="/filter",
            code="invalid_filter",
        )
    if kind == "bulk_destroy":
        if "items" in raw:
            raise ApiError.invalid(
                "give either items or filter, not both", pointer="/items"
            )
        return filters, b""
    data = raw.get("data")
    if not isinstance(data, dict) or not data:
        raise ApiError.invalid(
            "with a filter, data is the object of attributes to set on every "
            "matching item",
            pointer="/data",
        )
    return filters, _encode(data)


def _entry(kind: str, item_id: str, data: bytes) -> bytes:
    if kind == "bulk_destroy":
        return _encode(item_id)
    return b'{"id":' + _encode(item_id) + b',"attributes":' + data + b"}"


def stage_by_filter(
    db: Database,
    settings: Settings,
    kind: str,
    raw: dict[str, Any],
    token_id: str,
    key: KeyClaim | None,
) -> str:
    """Select, count and stage the items a filter matches; returns the job id.

    An empty selection is refused (422 ``empty_job``, as for a migration):
    a filter that matches nothing is more often a mistake than a wish, and
    the caller learns it at once rather than from a job with no items.
    """
    filters, data = _check_body(kind, raw)
    rest = {k: v for k, v in raw.items() if k not in _SELECTION_KEYS[kind]}
    with db.read() as conn:
        options = check_options(conn, kind, rest, in_query=False)
        try:
            chosen = select_items(conn, db.dialect, filters, max_ids=MAX_EXPORT_IDS)
        except ApiError as exc:
            raise _in_body(exc) from None
        # Counted first, so that an empty or oversized selection is refused
        # before anything is staged; the job's total is what was staged.
        count = conn.execute(
            sa.select(sa.func.count()).select_from(items).where(*chosen.where)
        ).scalar_one()
        if count == 0:
            raise ApiError.invalid(
                "no item matches the filter; nothing to do",
                pointer="/filter",
                code="empty_job",
            )
        if count > settings.max_items_per_job:
            raise ApiError.one(
                413,
                "too_many_items",
                f"the filter matches {count} items; a job holds at most "
                f"{settings.max_items_per_job}",
                pointer="/filter",
            )
        chunk_size = options.get("chunk_size") or settings.chunk_size
        options = {**options, "filter": filters}
        stager = Stager(db, settings, kind, options, chunk_size, token_id)
        try:
            query = sa.select(items.c.id).where(*chosen.where).order_by(items.c.pk)
            result = conn.execution_options(yield_per=_BATCH).execute(query)
            for ids in result.scalars().partitions(_BATCH):
                for item_id in ids:
                    stager.add(_entry(kind, item_id, data))
                if stager.wants_flush:
                    stager.flush()
            job_id = stager.finish({"selected": stager.count}, key)
        except BaseException:
            stager.abort()
            raise
    log.info(
        "job %s selected %d items by filter",
        job_id,
        stager.count,
        extra={"action": "job_selected", "job_id": job_id},
    )
    return job_id
