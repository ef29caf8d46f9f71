"""Accepting a job: its input is cut into chunks and stored before the 202.

A job is written in status "staging" first and its chunks in short
transactions while the body arrives, so that a large upload neither holds
the body in memory nor holds the database's write lock for its whole length.
Only the last transaction makes the job visible to workers ("queued"); a job
left in "staging" by a crash was never acknowledged, and is removed at start.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.clock import now_us
from lorry.config import Settings
from lorry.errors import ApiError
from lorry.ids import new_id
from lorry.jobs import idempotency
from lorry.jobs.control import with_default_timeout
from lorry.jobs.idempotency import KeyClaim
from lorry.jobs.model import STAGING, Entry, PreFailed, encode_entries
from lorry.store.db import Database
from lorry.store.tables import job_chunks, jobs

__all__ = ["Stager", "remove_unfinished"]

log = logging.getLogger(__name__)

#: Chunks written per staging transaction.
_FLUSH_CHUNKS = 8
#: A chunk is also cut at this many bytes of input, and staged chunks are
#: written once they hold this many: large items make fewer, smaller
#: chunks, not blobs past SQLite's limit or a body held in memory.
CHUNK_BYTES = 8 << 20
_FLUSH_BYTES = 32 << 20


class _IdOnly(msgspec.Struct):
    id: Any = None


_id_of_update = msgspec.json.Decoder(_IdOnly).decode
_encode_lines = msgspec.msgpack.Encoder().encode
_id_of_destroy = msgspec.json.Decoder(Any).decode


def _largest(raw: bytes) -> str:
    """Where most of a too large item is: its largest value, by key."""
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return ""
    if not isinstance(value, dict) or not value:
        return ""
    sizes = {k: len(msgspec.json.encode(v)) for k, v in value.items()}
    key = max(sizes, key=sizes.__getitem__)
    return f"; {key!r} alone holds {sizes[key]}"


class Stager:
    """Receives a job's input entries one by one and stages them in chunks."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        kind: str,
        options: dict[str, Any],
        chunk_size: int,
        token_id: str | None = None,
        parent_job_id: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.kind = kind
        self.options = with_default_timeout(options, settings.job_timeout_seconds)
        self.chunk_size = chunk_size
        self.job_id = new_id()
        self.count = 0
        self._entries: list[Entry] = []
        #: Imports: the input line of each entry of the chunk being cut.
        self._lines: list[int] | None = [] if kind == "import" else None
        self._entry_bytes = 0
        self._chunks: list[dict[str, Any]] = []
        self._chunk_bytes = 0
        self._seq = 0
        # Update and destroy jobs must name each item once; a set of ids is
        # the price of reporting the second mention as duplicate_id.
        self._seen: set[str] | None = (
            set() if kind in ("bulk_update", "bulk_destroy", "migrate") else None
        )
        now = now_us()
        with db.write() as conn:
            conn.execute(
                sa.insert(jobs).values(
                    id=self.job_id,
                    kind=kind,
                    status=STAGING,
                    options=self.options,
                    token_id=token_id,
                    priority=self.options.get("priority", 0),
                    parent_job_id=parent_job_id,
                    created_at=now,
                    updated_at=now,
                )
            )

    def add(self, raw: bytes) -> None:
        entry: Entry = raw
        if len(raw) > self.settings.max_item_bytes:
            entry = PreFailed(
                "item_too_large",
                f"the item has {len(raw)} bytes; at most "
                f"{self.settings.max_item_bytes} are allowed{_largest(raw)}",
                raw[:1024],
            )
        elif self._seen is not None:
            entry = self._dedupe(raw)
        self._append(entry, len(raw))

    def add_many(self, raws: list[bytes]) -> None:
        """Add entries in bulk: the common case at list speed, not item by item."""
        assert self._lines is None, "imports add records"
        if (
            self._seen is not None
            or not raws
            or max(map(len, raws)) > min(self.settings.max_item_bytes, 4096)
            or self.count + len(raws) > self.settings.max_items_per_job
        ):
            # Large items (or update/destroy jobs) go one by one, so that
            # byte limits and duplicate ids are checked for each.
            for raw in raws:
                self.add(raw)
            return
        start = 0
        while start < len(raws):
            # Slices of at most 2048 items of at most 4 KiB keep a chunk near
            # CHUNK_BYTES even when chunk_size is large.
            room = min(self.chunk_size - len(self._entries), 2048)
            taken = raws[start : start + room]
            self._entries.extend(taken)
            self._entry_bytes += sum(map(len, taken))
            self.count += len(taken)
            start += len(taken)
            if (
                len(self._entries) >= self.chunk_size
                or self._entry_bytes >= CHUNK_BYTES
            ):
                self._cut()

    def add_records(
        self, records: list[tuple[int, bytes, tuple[str, str] | None]]
    ) -> None:
        """Add an import's records: (line, JSON object, error if unreadable)."""
        assert self._lines is not None
        for line, raw, error in records:
            if error is not None:
                # Counted and cut like any entry: its chunk reports it.
                self._lines.append(line)
                self._append(PreFailed(error[0], error[1], raw), len(raw))
            else:
                self._lines.append(line)
                self.add(raw)

    def _append(self, entry: Entry, size: int) -> None:
        if self.count >= self.settings.max_items_per_job:
            raise ApiError.one(
                413,
                "too_many_items",
                f"a job holds at most {self.settings.max_items_per_job} items",
            )
        self._entries.append(entry)
        self._entry_bytes += size
        self.count += 1
        if len(self._entries) >= self.chunk_size or self._entry_bytes >= CHUNK_BYTES:
            self._cut()

    def _dedupe(self, raw: bytes) -> Entry:
        assert self._seen is not None
        try:
            if self.kind == "bulk_update":
                item_id = _id_of_update(raw).id
            else:
                item_id = _id_of_destroy(raw)
        except (msgspec.DecodeError, RecursionError):
            return raw  # the chunk reports it with its proper code
        if not isinstance(item_id, str):
            return raw
        if item_id in self._seen:
            return PreFailed(
                "duplicate_id",
                f"item {item_id} appears earlier in this job",
                raw,
                item_id,
            )
        self._seen.add(item_id)
        return raw

    def _cut(self) -> None:
        if not self._entries:
            return
        blob = encode_entries(self._entries)
        self._chunks.append(
            {
                "job_id": self.job_id,
                "seq": self._seq,
                "status": "pending",
                "first_index": self.count - len(self._entries),
                "item_count": len(self._entries),
                "input": blob,
                "lines": None if self._lines is None else _encode_lines(self._lines),
            }
        )
        if self._lines is not None:
            self._lines = []
        self._chunk_bytes += len(blob)
        self._seq += 1
        self._entries = []
        self._entry_bytes = 0

    @property
    def wants_flush(self) -> bool:
        return len(self._chunks) >= _FLUSH_CHUNKS or self._chunk_bytes >= _FLUSH_BYTES

    def flush(self) -> None:
        if not self._chunks:
            return
        with self.db.write() as conn:
            conn.execute(sa.insert(job_chunks), self._chunks)
        self._chunks = []
        self._chunk_bytes = 0

    def finish(
        self, details: dict[str, Any] | None = None, key: KeyClaim | None = None
    ) -> str:
        """Store what is left and hand the job to the workers.

        With ``key``, the request's idempotency key is recorded in the same
        transaction; KeyTaken if another request recorded it first, and this
        job stays unseen (the caller aborts it).
        """
        self._cut()
        if self.count == 0:
            raise ApiError.invalid(
                "the job has no items", pointer="/data", code="empty_job"
            )
        with self.db.write() as conn:
            if self._chunks:
                conn.execute(sa.insert(job_chunks), self._chunks)
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == self.job_id)
                .values(
                    status="queued",
                    total_items=self.count,
                    chunks_total=self._seq,
                    details=details,
                    updated_at=now_us(),
                )
            )
            if key is not None:
                idempotency.record(conn, key, self.job_id)
        self._chunks = []
        log.info(
            "job %s accepted: %s of %d items in %d chunks",
            self.job_id,
            self.kind,
            self.count,
            self._seq,
            extra={"action": "job_accepted", "job_id": self.job_id},
        )
        return self.job_id

    def abort(self) -> None:
        with self.db.write() as conn:
            conn.execute(
                sa.delete(job_chunks).where(job_chunks.c.job_id == self.job_id)
            )
            conn.execute(sa.delete(jobs).where(jobs.c.id == self.job_id))


def remove_unfinished(db: Database) -> int:
    """Drop jobs whose upload never finished (the client got no 202)."""
    with db.write() as conn:
        ids = list(
            conn.execute(sa.select(jobs.c.id).where(jobs.c.status == STAGING)).scalars()
        )
        if ids:
            conn.execute(sa.delete(job_chunks).where(job_chunks.c.job_id.in_(ids)))
            conn.execute(sa.delete(jobs).where(jobs.c.id.in_(ids)))
    for job_id in ids:
        log.warning(
            "job %s was still receiving its input when the server stopped; removed",
            job_id,
            extra={"action": "job_staging_removed", "job_id": job_id},
        )
    return len(ids)
