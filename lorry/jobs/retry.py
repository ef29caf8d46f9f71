"""Retrying a finished job: its failed items, as staged, become a new job.

The child job is of the parent's kind and runs with the parent's options;
its input is the input each failed item had (job_errors.input), in the
parent's order, with some of them replaced by corrected data. Item ``i`` of
the child is the parent's ``i``-th failed item.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.config import Settings
from lorry.errors import ApiError
from lorry.jobs import render
from lorry.jobs.idempotency import KeyClaim
from lorry.jobs.model import FINAL_STATUSES
from lorry.jobs.staging import Stager
from lorry.store.db import Database
from lorry.store.tables import job_errors

__all__ = ["RETRYABLE_KINDS", "check_fixes", "stage_retry"]

log = logging.getLogger(__name__)

RETRYABLE_KINDS = ("bulk_create", "bulk_update", "bulk_destroy", "import", "migrate")
#: Failed items read per query while the child is staged.
_PAGE = 5000
#: What a child carries over from its parent's details: what the parent
#: learnt at its accept (an import's header, a migration's field map).
_INHERITED_DETAILS = ("unknown_columns", "field_map")
_encode = msgspec.json.Encoder().encode


def check_fixes(raw: Any) -> dict[int, bytes]:
    """The ``fix`` of a retry's body: failed item index -> its new input."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ApiError.invalid(
            "'fix' must be an object of failed item index -> corrected input",
            pointer="/fix",
        )
    fixes: dict[int, bytes] = {}
    for key, value in raw.items():
        if not str(key).isdigit():
            raise ApiError.invalid(
                f"{key!r} is not an item index (a number as a string)",
                pointer=f"/fix/{key}",
                code="invalid_fix",
            )
        fixes[int(key)] = _encode(value)
    return fixes


def _failed_rows(db: Database, job_id: str) -> Iterator[tuple[int, int | None, bytes]]:
    """(index, line, input) of each failed item, in input order, by pages."""
    e = job_errors.c
    after = -1
    while True:
        with db.read() as conn:
            rows = conn.execute(
                sa.select(e.idx, e.line, e.input)
                .where(e.job_id == job_id, e.idx > after)
                .order_by(e.idx)
                .limit(_PAGE)
            ).all()
        if not rows:
            return
        for row in rows:
            yield row.idx, row.line, row.input
        after = rows[-1].idx


def _parent(db: Database, job_id: str, fixes: dict[int, bytes]) -> Any:
    """The job to retry, checked: finished, of a kind that has items, with
    failed items, and each fixed index one of them."""
    with db.read() as conn:
        row = render.find_row(conn, job_id)
        if row is None:
            raise ApiError.not_found("job", job_id)
        if row.status not in FINAL_STATUSES:
            raise ApiError.one(
                409, "job_active", f"job {job_id} is {row.status}; wait for its end"
            )
        if row.kind not in RETRYABLE_KINDS:
            raise ApiError.one(
                409,
                "not_retryable",
                f"job {job_id} is an {row.kind} job, which has no items to retry",
            )
        e = job_errors.c
        failed = conn.execute(
            sa.select(sa.func.count()).where(e.job_id == job_id)
        ).scalar_one()
        if not failed:
            raise ApiError.one(
                409,
                "no_failed_items",
                f"job {job_id} has no failed items to retry ({row.status})",
            )
        known = set(
            conn.execute(
                sa.select(e.idx).where(e.job_id == job_id, e.idx.in_(list(fixes)))
            ).scalars()
        )
    unknown = sorted(set(fixes) - known)
    if unknown:
        raise ApiError.invalid(
            f"item {unknown[0]} of job {job_id} did not fail; 'fix' takes the "
            "indexes of failed items (the 'index' of each of the job's errors)",
            pointer=f"/fix/{unknown[0]}",
            code="invalid_fix",
        )
    return row


def stage_retry(
    db: Database,
    settings: Settings,
    job_id: str,
    fixes: dict[int, bytes],
    token_id: str | None,
    key: KeyClaim | None = None,
) -> str:
    """Stage a retry of job ``job_id``'s failed items; returns the child's id."""
    parent = _parent(db, job_id, fixes)
    options = dict(parent.options)
    chunk_size = options.get("chunk_size") or settings.chunk_size
    stager = Stager(
        db, settings, parent.kind, options, chunk_size, token_id, parent_job_id=job_id
    )
    try:
        records: list[tuple[int, bytes, tuple[str, str] | None]] = []
        for index, line, raw in _failed_rows(db, job_id):
            raw = fixes.get(index, raw)
            if parent.kind == "import":
                # Lines stay those of the parent's file, for the child's errors.
                records.append((line or 0, raw, None))
                if len(records) >= _PAGE:
                    stager.add_records(records)
                    records = []
            else:
                stager.add(raw)
            if stager.wants_flush:
                stager.flush()
        if records:
            stager.add_records(records)
        inherited = {
            k: v for k, v in (parent.details or {}).items() if k in _INHERITED_DETAILS
        }
        child_id = stager.finish(inherited or None, key)
    except BaseException:
        stager.abort()
        raise
    log.info(
        "job %s retries %d failed items of job %s (%d fixed)",
        child_id,
        stager.count,
        job_id,
        len(fixes),
        extra={"action": "job_retried", "job_id": child_id, "parent_job_id": job_id},
    )
    return child_id
