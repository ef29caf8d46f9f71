"""Removing jobs for good: one on request, or every job past its expiry.

A finished job is kept with everything it left behind until its
``expires_at`` (lorry.jobs.options.expiry): its chunks, which hold its
staged input and its output, its per-item errors, a migration's map of
migrated items and an export's file. Removing a job removes all of these;
the rows go in one transaction, the file once that transaction committed,
so that no job ever points at a file that is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from lorry.clock import now_us
from lorry.config import Settings
from lorry.jobs import export
from lorry.jobs.model import FINAL_STATUSES
from lorry.store.db import Database
from lorry.store.tables import job_chunks, job_errors, jobs, migrated_items

__all__ = ["JobActive", "purge", "remove_job", "remove_rows"]

log = logging.getLogger(__name__)

#: Jobs removed per write transaction of a purge: a purge of many large
#: jobs should not hold the write lock, which every worker needs, for long.
_PURGE_BATCH = 50
#: The tables that hold a job's rows, children first.
_JOB_TABLES = (job_errors, migrated_items, job_chunks)


class JobActive(Exception):
    """The job is still queued or running: it cannot be removed yet."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id} is {status}")
        self.job_id = job_id
        self.status = status


def remove_rows(conn: sa.Connection, job_ids: Sequence[str]) -> None:
    """Delete every row of these jobs, in the caller's transaction.

    Explicit, though the foreign keys cascade: a database whose foreign keys
    are not enforced (SQLite without its pragma) would keep them otherwise.
    """
    for table in _JOB_TABLES:
        conn.execute(sa.delete(table).where(table.c.job_id.in_(job_ids)))
    conn.execute(sa.delete(jobs).where(jobs.c.id.in_(job_ids)))


def _remove_files(settings: Settings, rows: Sequence[Any]) -> None:
    for row in rows:
        if row.kind != "export":
            continue
        file_format = (row.options or {}).get("format", "json")
        export.export_file(settings, row.id, file_format).unlink(missing_ok=True)
        export.remove_leftovers(settings, row.id)


def remove_job(db: Database, settings: Settings, job_id: str) -> Any | None:
    """Remove one finished job with all it left; return its last row, or None
    if there is no such job. Raises JobActive for a job not finished."""
    with db.write() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            return None
        if row.status not in FINAL_STATUSES:
            raise JobActive(job_id, row.status)
        remove_rows(conn, [job_id])
    _remove_files(settings, [row])
    log.info(
        "job %s removed",
        job_id,
        extra={"action": "job_removed", "job_id": job_id},
    )
    return row


def purge(db: Database, settings: Settings, now: int | None = None) -> list[Any]:
    """Remove every finished job whose expiry has passed; return their rows."""
    now = now_us() if now is None else now
    j = jobs.c
    expired = (
        sa.select(jobs)
        .where(j.status.in_(FINAL_STATUSES), j.expires_at <= now)
        .order_by(j.expires_at, j.id)
        .limit(_PURGE_BATCH)
    )
    removed: list[Any] = []
    while True:
        with db.write() as conn:
            rows = conn.execute(expired).all()
            if rows:
                remove_rows(conn, [r.id for r in rows])
        if not rows:
            break
        _remove_files(settings, rows)
        for row in rows:
            log.info(
                "job %s expired and was removed",
                row.id,
                extra={"action": "job_purged", "job_id": row.id, "kind": row.kind},
            )
        removed.extend(rows)
    _remove_orphan_files(db, settings)
    return removed


def _remove_orphan_files(db: Database, settings: Settings) -> None:
    """Export files of jobs that are gone: left by a process that died
    between a job's removal and its file's."""
    folder = settings.exports_dir
    if not folder.is_dir():
        return
    files = {p: p.name.lstrip(".").split(".", 1)[0] for p in folder.iterdir()}
    if not files:
        return
    with db.read() as conn:
        known = set(
            conn.execute(
                sa.select(jobs.c.id).where(jobs.c.id.in_(set(files.values())))
            ).scalars()
        )
    for path, job_id in files.items():
        if job_id not in known and path.is_file():
            path.unlink(missing_ok=True)
            log.info(
                "export file %s of a removed job deleted",
                path.name,
                extra={"action": "orphan_file_removed", "job_id": job_id},
            )
