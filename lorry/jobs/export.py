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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lorry.clock import now_us, to_iso
from lorry.config import Settings
from lorry.errors import ApiError, ErrorItem
from lorry.ids import new_id
from lorry.jobs import signing
from lorry.jobs.export_formats import EXTENSIONS, FORMATS, make_writer
from lorry.jobs.model import ACTIVE_STATUSES, Claim, LeaseLost, encode_entries
from lorry.schema.fields import ItemTypeDef
from lorry.store import item_types as type_store
from lorry.store.db import Database
from lorry.store.dialect import Dialect
from lorry.store.selection import select_items
from lorry.store.snapshot import ExportSet, link_fields, read_snapshot
from lorry.store.tables import job_chunks, jobs

__all__ = [
    "MAX_DEPTH",
    "MAX_URL_TTL",
    "ExportFailed",
    "accept",
    "check_options",
    "check_url_ttl",
    "export_file",
    "exported_types",
    "run",
    "sign_url",
]

log = logging.getLogger(__name__)

MAX_DEPTH = 10
MAX_URL_TTL = 30 * 86_400
#: Ids a filter may list: an export may name many more than a page.
MAX_IDS = 10_000
#: Rows fetched and written at a time.
BATCH_ROWS = 2000
#: Progress (and the lease) is written at most this often.
PROGRESS_SECONDS = 0.5
_OPTIONS = (
    "filter",
    "order_by",
    "format",
    "fields",
    "include_relationships",
    "url_ttl",
    "bom",
    "delimiter",
)


class ExportFailed(Exception):
    """The export cannot succeed however often it runs (its filter no longer
    reads, say): the job fails instead of running again."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _bad(detail: str, name: str) -> ApiError:
    return ApiError(422, [ErrorItem.make(422, "invalid_option", detail, pointer=name)])


def _depth(value: Any) -> int:
    if value is True:
        return 1
    if value is False or value is None:
        return 0
    if isinstance(value, int) and 0 <= value <= MAX_DEPTH:
        return value
    raise _bad(
        f"include_relationships takes true, false or a depth from 0 to "
        f"{MAX_DEPTH}, not {value!r}",
        "/include_relationships",
    )


def check_url_ttl(value: Any, settings: Settings) -> int:
    """A URL lifetime given by a client, checked (or the server's default)."""
    if value is None:
        return settings.export_url_ttl
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"url_ttl must be a number of seconds, not {value!r}", "/url_ttl")
    if not 1 <= value <= MAX_URL_TTL:
        raise _bad(f"url_ttl must be between 1 and {MAX_URL_TTL} seconds", "/url_ttl")
    return value


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(f"{name} must be true or false, not {value!r}", f"/{name}")
    return value


def exported_types(
    chosen: list[ItemTypeDef], all_types: list[ItemTypeDef], depth: int
) -> list[ItemTypeDef]:
    """The selected types and the types their links reach within ``depth``."""
    by_key = {t.api_key: t for t in all_types}
    keys = {t.api_key for t in chosen}
    frontier = set(keys)
    for _ in range(depth):
        reached = {
            target
            for key in frontier
            for f in by_key[key].fields
            if f.field_type in ("link", "links")
            for target in f.validators.item_types or ()
            if target in by_key
        }
        frontier = reached - keys
        keys |= reached
    return [t for t in all_types if t.api_key in keys]


def check_options(
    conn: sa.Connection, dialect: Dialect, raw: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """Validate an export's options; return them normalised."""
    for key in raw:
        if key not in _OPTIONS:
            raise _bad(
                f"unknown option {key!r} for an export; allowed: "
                + ", ".join(_OPTIONS),
                f"/{key}",
            )
    file_format = raw.get("format", "json")
    if file_format not in FORMATS:
        raise _bad(
            f"format must be one of {', '.join(FORMATS)}, not {file_format!r}",
            "/format",
        )
    order_by = raw.get("order_by")
    if order_by is not None and not isinstance(order_by, str):
        raise _bad("order_by must be a string such as '-created_at'", "/order_by")
    selection = select_items(
        conn, dialect, raw.get("filter"), order_by, max_ids=MAX_IDS
    )
    depth = _depth(raw.get("include_relationships"))
    options: dict[str, Any] = {
        "filter": raw.get("filter") or {},
        "order_by": order_by,
        "format": file_format,
        "fields": _fields(raw.get("fields"), selection.types, conn, depth),
        "include_relationships": depth,
        "url_ttl": check_url_ttl(raw.get("url_ttl"), settings),
    }
    bom = _flag(raw.get("bom"), "bom")
    delimiter = raw.get("delimiter", ",")
    if file_format != "csv" and (bom or "delimiter" in raw):
        name = "bom" if bom else "delimiter"
        raise _bad(f"{name} applies to csv exports only", f"/{name}")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise _bad(
            "delimiter must be one character other than a quote, CR or LF",
            "/delimiter",
        )
    if file_format == "csv":
        options["bom"] = bom
        options["delimiter"] = delimiter
    return options


def _fields(
    value: Any, chosen: list[ItemTypeDef], conn: sa.Connection, depth: int
) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise _bad("fields must be a non-empty list of field api_keys", "/fields")
    types = exported_types(chosen, type_store.load_all(conn), depth)
    known = {f.api_key for t in types for f in t.fields}
    for n, key in enumerate(value):
        if not isinstance(key, str) or key not in known:
            raise _bad(
                f"fields: no exported item type has a field {key!r}", f"/fields/{n}"
            )
    return list(dict.fromkeys(value))


def accept(db: Database, options: dict[str, Any], token_id: str | None) -> str:
    """Store the job and its one chunk; workers see it at once."""
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
    log.info(
        "job %s accepted: export as %s",
        job_id,
        options["format"],
        extra={"action": "job_accepted", "job_id": job_id},
    )
    return job_id


def export_file(settings: Settings, job_id: str, file_format: str) -> Path:
    return settings.exports_dir / f"{job_id}.{EXTENSIONS[file_format]}"


def sign_url(settings: Settings, job_id: str, ttl: int) -> tuple[str, str]:
    """A fresh download URL of a job's file, and when it expires (ISO)."""
    expires = now_us() + ttl * 1_000_000
    token = signing.sign(signing.ensure_secret(settings.data_dir), job_id, expires)
    return signing.download_path(token), to_iso(expires) or ""


class _Progress:
    """Short write transactions: counts that never go back, a renewed lease."""

    def __init__(self, db: Database, settings: Settings, claim_: Claim) -> None:
        self.db = db
        self.settings = settings
        self.claim = claim_
        self.total = 0
        self._last = 0.0

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
        status = conn.execute(
            sa.select(jobs.c.status).where(jobs.c.id == self.claim.job_id)
        ).scalar()
        if renewed.rowcount != 1 or status not in ACTIVE_STATUSES:
            raise LeaseLost(self.claim.job_id, 0)

    def start(self, total: int) -> None:
        j = jobs.c
        now = now_us()
        with self.db.write() as conn:
            self._renew(conn, now)
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
        self._last = time.monotonic()

    def advance(self, done: int) -> None:
        if time.monotonic() - self._last < PROGRESS_SECONDS:
            return
        j = jobs.c
        shown = min(done, self.total)
        now = now_us()
        with self.db.write() as conn:
            self._renew(conn, now)
            # Only forward: a run after a dead one starts again from 0.
            conn.execute(
                sa.update(jobs)
                .where(j.id == self.claim.job_id, j.processed_items < shown)
                .values(processed_items=shown, updated_at=now)
            )
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
                max_ids=MAX_IDS,
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


def _remove_leftovers(settings: Settings, job_id: str) -> None:
    """Temporary files of runs that died; a run that lost its lease and
    still writes one fails at its rename."""
    for stale in settings.exports_dir.glob(f".{job_id}.*.tmp"):
        stale.unlink(missing_ok=True)


def run(db: Database, settings: Settings, claim_: Claim) -> str:
    """Run an export claim from scratch; returns the job's final status."""
    job_id = claim_.job_id
    settings.exports_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(settings, job_id)
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
    c, j = job_chunks.c, jobs.c
    url, url_expires = sign_url(settings, claim_.job_id, claim_.options["url_ttl"])
    with db.write() as conn:
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
            conn.execute(sa.select(j.details).where(j.id == claim_.job_id)).scalar()
            or {}
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
        retain = timedelta(days=settings.job_retention_days)
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
                expires_at=now + int(retain.total_seconds() * 1_000_000),
            )
        )
