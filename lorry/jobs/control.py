"""Stopping jobs before their end: cancels, time-outs, and what never ran.

A job is stopped in one write transaction that ends it and marks each of its
chunks that is not done ``cancelled``. Workers check the job's status in the
transaction that would write their claim, and write nothing for a job that
is no longer active; since writers are serialised, no item is applied after
the cancel has committed. The staged input of the chunks that never ran
stays, so that a client can read it back and submit it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from lorry.clock import now_us
from lorry.errors import ApiError
from lorry.jobs.model import ACTIVE_STATUSES, FINAL_STATUSES, STAGING, decode_entries
from lorry.store.db import Database
from lorry.store.tables import job_chunks, jobs

__all__ = [
    "MAX_TIMEOUT_SECONDS",
    "cancel",
    "check_running",
    "end",
    "over_deadline",
    "unprocessed_chunks",
    "unprocessed_count",
    "with_default_timeout",
]

log = logging.getLogger(__name__)

#: Longest time-out a job may ask for: a year, far past any real job, but a
#: bound that keeps deadlines well inside 64-bit microseconds.
MAX_TIMEOUT_SECONDS = 366 * 86_400
#: Chunks that are not done when their job ends never run.
_UNRUN = ("pending", "running")


def with_default_timeout(
    options: dict[str, Any], default: float | None
) -> dict[str, Any]:
    """A job's options with the server's time-out where the job set none.

    Resolved at accept, so that the job shows the time-out it runs under and
    a change of the server's default does not reach jobs already accepted.
    """
    if default is None or "timeout_seconds" in options:
        return options
    return {**options, "timeout_seconds": default}


def over_deadline(options: dict[str, Any], started_at: int | None, now: int) -> bool:
    """Whether a job has run past its ``timeout_seconds`` (counted from its
    start: time spent queued behind other jobs does not count)."""
    timeout = options.get("timeout_seconds")
    if timeout is None or started_at is None:
        return False
    return now > started_at + int(float(timeout) * 1_000_000)


def end(
    conn: sa.Connection,
    job_id: str,
    status: str,
    error: dict[str, Any] | None,
    retention_days: int,
) -> bool:
    """End an active job now, in ``status``; its unrun chunks never run.

    Returns False when the job had already ended (another writer won).
    """
    now = now_us()
    retain = int(timedelta(days=retention_days).total_seconds() * 1_000_000)
    j, c = jobs.c, job_chunks.c
    ended = conn.execute(
        sa.update(jobs)
        .where(j.id == job_id, j.status.in_(ACTIVE_STATUSES))
        .values(
            status=status,
            error=error,
            finished_at=now,
            updated_at=now,
            expires_at=now + retain,
        )
    )
    if ended.rowcount != 1:
        return False
    conn.execute(
        sa.update(job_chunks)
        .where(c.job_id == job_id, c.status.in_(_UNRUN))
        .values(status="cancelled", lease_owner=None, lease_until=None)
    )
    return True


def _timeout_error(options: dict[str, Any]) -> dict[str, Any]:
    timeout = options["timeout_seconds"]
    return {
        "code": "timeout",
        "message": f"the job ran past its time-out of {timeout} s",
        "details": {"timeout_seconds": timeout},
    }


def check_running(conn: sa.Connection, job_id: str, retention_days: int) -> str | None:
    """Inside a worker's write transaction: None if the job may go on, else
    its final status. A job past its time-out is failed here, in this
    transaction, so that the write it stops and the end it records are one."""
    j = jobs.c
    # Locked where the database has row locks, so that a cancel cannot
    # commit between this read and the write it guards (SQLite writers are
    # serialised already).
    row = conn.execute(
        sa.select(j.status, j.options, j.started_at)
        .where(j.id == job_id)
        .with_for_update()
    ).one()
    if row.status not in ACTIVE_STATUSES:
        return str(row.status)
    if not over_deadline(row.options, row.started_at, now_us()):
        return None
    end(conn, job_id, "failed", _timeout_error(row.options), retention_days)
    log.warning(
        "job %s timed out after %s s; its unrun chunks are cancelled",
        job_id,
        row.options["timeout_seconds"],
        extra={"action": "job_timed_out", "job_id": job_id},
    )
    return "failed"


def cancel(db: Database, job_id: str, retention_days: int) -> None:
    """Cancel a queued or running job: 404 if there is none, 409 if it ended."""
    with db.write() as conn:
        status = conn.execute(
            sa.select(jobs.c.status).where(jobs.c.id == job_id)
        ).scalar()
        if status is None or status == STAGING:
            raise ApiError.not_found("job", job_id)
        if status in FINAL_STATUSES:
            raise ApiError.one(
                409,
                "job_finished",
                f"job {job_id} has already ended ({status}); there is nothing "
                "to cancel",
            )
        end(conn, job_id, "cancelled", None, retention_days)
    log.info(
        "job %s cancelled",
        job_id,
        extra={"action": "job_cancelled", "job_id": job_id},
    )


def unprocessed_count(conn: sa.Connection, job_id: str) -> int:
    """Input entries of the job's chunks that are not done."""
    c = job_chunks.c
    return int(
        conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(c.item_count), 0)).where(
                c.job_id == job_id, c.status != "done"
            )
        ).scalar_one()
    )


def unprocessed_chunks(db: Database, job_id: str) -> Iterator[list[bytes]]:
    """The staged input of every chunk not done, in input order, a chunk's
    entries at a time: a job may hold millions."""
    c = job_chunks.c
    with db.read() as conn:
        seqs = list(
            conn.execute(
                sa.select(c.seq)
                .where(c.job_id == job_id, c.status != "done", c.item_count > 0)
                .order_by(c.seq)
            ).scalars()
        )
    for seq in seqs:
        with db.read() as conn:
            blob = conn.execute(
                sa.select(c.input).where(c.job_id == job_id, c.seq == seq)
            ).scalar_one()
        # An entry refused while staged keeps its input (only the first KiB
        # of one that was too large).
        yield [e if isinstance(e, bytes) else e.raw for e in decode_entries(blob)]
