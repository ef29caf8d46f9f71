"""Export jobs: one consistent snapshot of items, written to a file.

An export is one chunk, staged when the job is accepted, and it takes its
own path through the runner: it reads and writes its file *outside* the
write lock (every other job would stall behind it otherwise), in one read
transaction, and takes the lock only for short moments: to report
progress and renew its lease, and at the end to record the file and mark
the chunk done, guarded by the lease. A worker that dies mid-way leaves
only a temporary file; the chunk is leased again and the export starts
over, and the finished file appears under its name by an atomic rename.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lorry.clock import now_us, to_iso
from lorry.config import Settings
from lorry.errors import ApiError
from lorry.ids import new_id
from lorry.jobs import control, idempotency, signing
from lorry.jobs.export_formats import EXTENSIONS, make_writer
from lorry.jobs.idempotency import KeyClaim
from lorry.jobs.model import (
    Claim,
    JobStopped,
    LeaseLost,
    encode_entries,
)
from lorry.jobs.options import MAX_EXPORT_IDS, expiry
from lorry.store import item_types as type_store
from lorry.store.db import Database
from lorry.store.selection import select_items
from lorry.store.snapshot import ExportSet, exported_types, link_fields, read_snapshot
from lorry.store.tables import job_chunks, jobs

__all__ = [
    "ExportFailed",
    "accept",
    "export_file",
    "remove_leftovers",
    "run",
    "sign_url",
]

log = logging.getLogger(__name__)

#: Rows fetched and written at a time.
BATCH_ROWS = 2000
#: Progress (and the lease) is written at most this often.
PROGRESS_SECONDS = 0.5


class ExportFailed(Exception):
    """The export cannot succeed however often it runs (its filter no longer
    reads, say): the job fails instead of running again."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def accept(
    db: Database,
    options: dict[str, Any],
    token_id: str | None,
    key: KeyClaim | None = None,
) -> str:
    """Store the job and its one chunk; workers see it at once.

    With ``key``, the request's idempotency key is recorded with the job
    (KeyTaken if another request recorded it first; nothing is stored).
    """
    job_id = new_id()
    now = now_us()
    with db.write() as conn:
        conn.execute(
            sa.insert(jobs).values(
                id=job_id,
                kind="export",
                status="queued",
                options=options,
                token_id=token_id,
                priority=options.get("priority", 0),
                chunks_total=1,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            sa.insert(job_chunks).values(
                job_id=job_id,
                seq=0,
                status="pending",
                first_index=0,
                item_count=0,
                input=encode_entries([]),
            )
        )
        if key is not None:
            idempotency.record(conn, key, job_id)
    log.info(
        "job %s accepted: export as %s",
        job_id,
        options["format"],
        extra={"action": "job_accepted", "job_id": job_id},
    )
    return job_id


def export_file(settings: Settings, job_id: str, file_format: str) -> Path:
    """Where the finished file of an export job is (or would be)."""
    return settings.exports_dir / f"{job_id}.{EXTENSIONS[file_format]}"


def sign_url(settings: Settings, job_id: str, ttl: int) -> tuple[str, str]:
    """A fresh download URL of a job's file, and when it expires (ISO)."""
    expires = now_us() + ttl * 1_000_000
    token = signing.sign(signing.server_secret(settings), job_id, expires)
    return signing.download_path(token), to_iso(expires) or ""


class _Progress:
    """Short write transactions: counts that never go back, a renewed lease."""

    def __init__(self, db: Database, settings: Settings, claim_: Claim) -> None:
        self.db = db
        self.settings = settings
        self.claim = claim_
        self.total = 0
        self._last = 0.0

    def _write(self, work: Callable[[sa.Connection, int], None]) -> None:
        """One short write: stop if the job was stopped, renew the lease, work.

        The stop is raised once out of the transaction, which must commit
        the end of a job that timed out.
        """
        now = now_us()
        with self.db.write() as conn:
            stopped = control.check_running(
                conn, self.claim.job_id, self.settings.job_retention_days
            )
            if stopped is None:
                self._renew(conn, now)
                work(conn, now)
        if stopped is not None:
            raise JobStopped(self.claim.job_id, stopped)

    def _renew(self, conn: sa.Connection, now: int) -> None:
        c = job_chunks.c
        renewed = conn.execute(
            sa.update(job_chunks)
            .where(
                c.job_id == self.claim.job_id,
                c.seq.in_(self.claim.seqs),
                c.status == "running",
                c.lease_owner == self.claim.owner,
            )
            .values(lease_until=now + self.settings.lease_seconds * 1_000_000)
        )
        if renewed.rowcount != 1:
            raise LeaseLost(self.claim.job_id, 0)

    def start(self, total: int) -> None:
        j = jobs.c

        def work(conn: sa.Connection, now: int) -> None:
            # A run after a dead one keeps the first total: its snapshot may
            # count more items, and a larger total would move progress back.
            conn.execute(
                sa.update(jobs)
                .where(j.id == self.claim.job_id, j.total_items == 0)
                .values(total_items=total, updated_at=now)
            )
            self.total = int(
                conn.execute(
                    sa.select(j.total_items).where(j.id == self.claim.job_id)
                ).scalar_one()
            )

        self._write(work)
        self._last = time.monotonic()

    def advance(self, done: int) -> None:
        if time.monotonic() - self._last < PROGRESS_SECONDS:
            return
        j = jobs.c
        shown = min(done, self.total)

        def work(conn: sa.Connection, now: int) -> None:
            # Only forward: a run after a dead one starts again from 0.
            conn.execute(
                sa.update(jobs)
                .where(j.id == self.claim.job_id, j.processed_items < shown)
                .values(processed_items=shown, updated_at=now)
            )

        self._write(work)
        self._last = time.monotonic()


@dataclass(slots=True)
class _Written:
    items: int = 0
    size: int = 0
    sha256: str = ""


def _write(
    db: Database, settings: Settings, claim_: Claim, path: Path, progress: _Progress
) -> _Written:
    opts = claim_.options
    depth = int(opts.get("include_relationships") or 0)
    written = _Written()
    digest = hashlib.sha256()
    with read_snapshot(db) as conn:
        all_types = type_store.load_all(conn)
        try:
            selection = select_items(
                conn, db.dialect, opts.get("filter"), opts.get("order_by"),
                max_ids=MAX_EXPORT_IDS,
            )  # fmt: skip
        except ApiError as exc:
            # The filter read when the job was accepted; an item type it
            # names has gone since. Running again will not help.
            raise ExportFailed(exc.errors[0].code, str(exc)) from None
        types = exported_types(selection.types, all_types, depth)
        export_set = ExportSet(
            conn, db.dialect, selection, depth, link_fields(types) if depth else []
        )
        progress.start(export_set.collect())
        writer = make_writer(
            opts["format"],
            types,
            opts.get("fields"),
            delimiter=opts.get("delimiter", ","),
            bom=bool(opts.get("bom")),
        )
        with open(path, "wb", buffering=1 << 20) as handle:

            def put(data: bytes) -> None:
                handle.write(data)
                digest.update(data)
                written.size += len(data)

            put(writer.start)
            for rows in export_set.batches(BATCH_ROWS):
                put(writer.batch(rows))
                written.items += len(rows)
                progress.advance(written.items)
            put(writer.finish())
            handle.flush()
            # The file must be whole on disk before the job says it is done.
            os.fsync(handle.fileno())
    written.sha256 = digest.hexdigest()
    return written


def remove_leftovers(settings: Settings, job_id: str) -> None:
    """Temporary files of runs that died; a run that lost its lease and
    still writes one fails at its rename."""
    for stale in settings.exports_dir.glob(f".{job_id}.*.tmp"):
        stale.unlink(missing_ok=True)


def run(db: Database, settings: Settings, claim_: Claim) -> str:
    """Run an export claim from scratch; returns the job's final status."""
    job_id = claim_.job_id
    settings.exports_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(settings, job_id)
    final = export_file(settings, job_id, claim_.options["format"])
    temporary = settings.exports_dir / f".{job_id}.{uuid.uuid4().hex}.tmp"
    started = time.perf_counter()
    try:
        written = _write(
            db, settings, claim_, temporary, _Progress(db, settings, claim_)
        )
        _finish(db, settings, claim_, temporary, final, written)
    finally:
        temporary.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    log.info(
        "job %s exported %d items (%d bytes) in %.3f s",
        job_id,
        written.items,
        written.size,
        seconds,
        extra={
            "action": "export_written",
            "job_id": job_id,
            "items": written.items,
            "bytes": written.size,
            "seconds": seconds,
        },
    )
    return "completed"


def _finish(
    db: Database,
    settings: Settings,
    claim_: Claim,
    temporary: Path,
    final: Path,
    written: _Written,
) -> None:
    """Record the file and end the job in one short transaction."""
    with db.write() as conn:
        stopped = control.check_running(
            conn, claim_.job_id, settings.job_retention_days
        )
        if stopped is None:
            _record_file(conn, settings, claim_, temporary, final, written)
    if stopped is not None:
        raise JobStopped(claim_.job_id, stopped)


def _record_file(
    conn: sa.Connection,
    settings: Settings,
    claim_: Claim,
    temporary: Path,
    final: Path,
    written: _Written,
) -> None:
    c, j = job_chunks.c, jobs.c
    url, url_expires = sign_url(settings, claim_.job_id, claim_.options["url_ttl"])
    now = now_us()
    done = conn.execute(
        sa.update(job_chunks)
        .where(
            c.job_id == claim_.job_id,
            c.seq.in_(claim_.seqs),
            c.status == "running",
            c.lease_owner == claim_.owner,
        )
        .values(
            status="done",
            successful_items=written.items,
            finished_at=now,
            lease_until=None,
        )
    )
    if done.rowcount != len(claim_.seqs):
        raise LeaseLost(claim_.job_id, 0)
    # Renamed under the lease: a file under the job's name is always a
    # whole one, and only a job that is done points at it.
    os.replace(temporary, final)
    details = dict(
        conn.execute(sa.select(j.details).where(j.id == claim_.job_id)).scalar() or {}
    )
    details["export"] = {
        "format": claim_.options["format"],
        "file": final.name,
        "bytes": written.size,
        "item_count": written.items,
        "sha256": written.sha256,
        "url": url,
        "url_expires_at": url_expires,
    }
    conn.execute(
        sa.update(jobs)
        .where(j.id == claim_.job_id)
        .values(
            status="completed",
            total_items=written.items,
            processed_items=written.items,
            successful_items=written.items,
            chunks_done=j.chunks_total,
            details=details,
            finished_at=now,
            updated_at=now,
            expires_at=expiry(settings, claim_.options, now),
        )
    )
