"""Reading jobs back: the job resource, its result, and its paginated parts."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.clock import now_us, to_iso
from lorry.jobs.control import unprocessed_count
from lorry.jobs.model import FINAL_STATUSES, STAGING
from lorry.schema.validator import MAX_JSON_DEPTH, too_deep
from lorry.store import item_types as type_store
from lorry.store import items as item_store
from lorry.store.tables import job_chunks, job_errors, jobs, migrated_items

__all__ = [
    "INLINE_LIMIT",
    "data_page",
    "errors_page",
    "export_result",
    "failed_inputs",
    "find_row",
    "job_resource",
    "list_rows",
    "queue_position",
    "retry_ids",
]

#: Entries of data, errors and failed_items_data shown inside the job.
INLINE_LIMIT = 1000
#: failed_items_data inside the job stops past this many bytes of input:
#: a job is polled, and its failed inputs may be large.
INLINE_BYTES = 1 << 20
_decode_output = msgspec.msgpack.Decoder(list[tuple[int, str]]).decode


def find_row(conn: sa.Connection, job_id: str) -> Any:
    return conn.execute(
        sa.select(jobs).where(jobs.c.id == job_id, jobs.c.status != STAGING)
    ).first()


def list_rows(
    conn: sa.Connection,
    statuses: list[str],
    kinds: list[str],
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    where = [jobs.c.status != STAGING]
    if statuses:
        where.append(jobs.c.status.in_(statuses))
    if kinds:
        where.append(jobs.c.kind.in_(kinds))
    total = conn.execute(
        sa.select(sa.func.count()).select_from(jobs).where(*where)
    ).scalar_one()
    rows = conn.execute(
        sa.select(jobs)
        .where(*where)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), int(total)


def _details(row: Any) -> dict[str, Any]:
    finished = row.status in FINAL_STATUSES
    phase = "finished" if finished else "running" if row.started_at else "queued"
    rate: float | None = None
    eta: float | None = None
    if row.started_at and row.processed_items:
        end = row.finished_at or now_us()
        seconds = max((end - row.started_at) / 1_000_000, 1e-6)
        rate = round(row.processed_items / seconds, 1)
        if not finished and rate > 0:
            eta = round((row.total_items - row.processed_items) / rate, 1)
    return {
        "phase": phase,
        "total": row.total_items,
        "processed": row.processed_items,
        "successful": row.successful_items,
        "failed": row.failed_items,
        "skipped": row.skipped_items,
        "chunks_total": row.chunks_total,
        "chunks_done": row.chunks_done,
        "items_per_second": rate,
        "eta_seconds": eta,
        **(row.details or {}),
    }


def _progress(row: Any) -> float:
    # Counts only grow, in the same transaction as the chunk they count, so
    # progress cannot go back; a finished job reads exactly 1.
    if row.status in FINAL_STATUSES:
        return 1.0
    if not row.total_items:
        return 0.0
    return float(min(row.processed_items / row.total_items, 0.9999))


def job_resource(
    conn: sa.Connection, row: Any, *, with_result: bool = True
) -> dict[str, Any]:
    details = _details(row)
    if row.status == "queued":
        details["queue_position"] = queue_position(conn, row)
    attributes: dict[str, Any] = {
        "kind": row.kind,
        "status": row.status,
        "progress": _progress(row),
        "details": details,
        "options": row.options,
        "result": None,
        "error": row.error,
        "created_at": to_iso(row.created_at),
        "started_at": to_iso(row.started_at),
        "finished_at": to_iso(row.finished_at),
        "expires_at": to_iso(row.expires_at),
        "parent_job_id": row.parent_job_id,
        "retries": retry_ids(conn, row.id),
    }
    if with_result and row.status in FINAL_STATUSES:
        attributes["result"] = _result(conn, row)
    return {
        "id": row.id,
        "type": "job",
        "attributes": attributes,
        "links": {"self": f"/jobs/{row.id}"},
    }


def queue_position(conn: sa.Connection, row: Any) -> int:
    """A queued job's place among the queued jobs (1: the next to start), in
    the order workers start them: higher priority first, then the oldest.

    A job held back by its token's limit of running jobs keeps its place,
    and a later job of another token may start before it meanwhile.
    """
    j = jobs.c
    ahead = sa.or_(
        j.priority > row.priority,
        sa.and_(j.priority == row.priority, j.created_at < row.created_at),
        sa.and_(
            j.priority == row.priority,
            j.created_at == row.created_at,
            j.id < row.id,
        ),
    )
    query = (
        sa.select(sa.func.count()).select_from(jobs).where(j.status == "queued", ahead)
    )
    return int(conn.execute(query).scalar_one()) + 1


def retry_ids(conn: sa.Connection, job_id: str) -> list[str]:
    """The jobs that retried a job's failed items, oldest first."""
    j = jobs.c
    query = (
        sa.select(j.id)
        .where(j.parent_job_id == job_id, j.status != STAGING)
        .order_by(j.created_at, j.id)
    )
    return list(conn.execute(query).scalars())


def _result(conn: sa.Connection, row: Any) -> dict[str, Any]:
    data, data_total = data_page(conn, row, INLINE_LIMIT, 0)
    errors, errors_total = errors_page(conn, row.id, INLINE_LIMIT, 0)
    inputs, inputs_total = failed_inputs(
        conn, row.id, INLINE_LIMIT, 0, max_bytes=INLINE_BYTES
    )
    result: dict[str, Any] = {
        "processed_items": row.processed_items,
        "successful_items": row.successful_items,
        "failed_items": row.failed_items,
        "skipped_items": row.skipped_items,
        # Items of chunks that never ran (a cancel, a time-out, a failure):
        # with the processed ones, they make the total.
        "unprocessed_items": unprocessed_count(conn, row.id),
        "data": data,
        "errors": errors,
        "failed_items_data": inputs,
        "truncated": {
            "data": data_total > len(data),
            "errors": errors_total > len(errors),
            "failed_items_data": inputs_total > len(inputs),
        },
        "links": {
            "data": f"/jobs/{row.id}/data",
            "errors": f"/jobs/{row.id}/errors",
            "failed_items": f"/jobs/{row.id}/failed-items",
            "unprocessed": f"/jobs/{row.id}/unprocessed",
        },
    }
    if row.kind in ("import", "migrate"):  # these both create and update
        result["created_items"] = row.created_items
        result["updated_items"] = row.updated_items
    if row.kind == "export":
        result.update(export_result(row))
    return result


def export_result(row: Any) -> dict[str, Any]:
    """An export's file: where to download it, until when, and what it holds."""
    export = (row.details or {}).get("export")
    if not export:
        return {"url": None, "expires_at": None}
    return {
        "url": export["url"],
        "expires_at": export["url_expires_at"],
        "format": export["format"],
        "size": export["bytes"],
        "item_count": export["item_count"],
        "sha256": export["sha256"],
    }


def data_page(
    conn: sa.Connection, row: Any, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The items a job created or changed, in input order, from chunk outputs."""
    if row.kind == "export":  # it changed nothing; its items are in its file
        return [], 0
    c = job_chunks.c
    total = int(
        conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(c.successful_items), 0)).where(
                c.job_id == row.id, c.status == "done"
            )
        ).scalar_one()
    )
    refs: list[tuple[int, str]] = []
    skip = offset
    chunks = conn.execute(
        sa.select(c.successful_items, c.output)
        .where(c.job_id == row.id, c.status == "done", c.successful_items > 0)
        .order_by(c.seq)
    )
    for count, output in chunks:
        if skip >= count:
            skip -= count
            continue
        entries = _decode_output(output)[skip:]
        skip = 0
        refs.extend(entries[: limit - len(refs)])
        if len(refs) >= limit:
            break
    refs.sort()
    if row.kind == "bulk_destroy":
        return [{"id": item_id, "index": index} for index, item_id in refs], total
    type_keys = type_store.type_keys(conn)
    found = item_store.rows_by_ids(conn, [r[1] for r in refs])
    sources = (
        _sources(conn, row.id, [r[1] for r in refs]) if row.kind == "migrate" else {}
    )
    out: list[dict[str, Any]] = []
    for index, item_id in refs:
        item_row = found.get(item_id)
        meta: dict[str, Any] = {"index": index}
        if item_id in sources:
            meta["source_id"] = sources[item_id]
        if item_row is None:  # destroyed since
            out.append({"id": item_id, "meta": {**meta, "deleted": True}})
        else:
            out.append(item_store.render(item_row, type_keys, **meta))
    return out, total


def _sources(conn: sa.Connection, job_id: str, ids: list[str]) -> dict[str, str]:
    """A migration's new items: new id -> the id of the item it came from."""
    m = migrated_items.c
    query = sa.select(m.target_id, m.source_id).where(
        m.job_id == job_id, m.target_id.in_(ids)
    )
    return {t: s for t, s in conn.execute(query)}


def errors_page(
    conn: sa.Connection, job_id: str, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    e = job_errors.c
    total = conn.execute(
        sa.select(sa.func.count()).select_from(job_errors).where(e.job_id == job_id)
    ).scalar_one()
    rows = conn.execute(
        sa.select(e.idx, e.item_id, e.code, e.field, e.line, e.column, e.message)
        .where(e.job_id == job_id)
        .order_by(e.idx)
        .limit(limit)
        .offset(offset)
    )
    errors = []
    for r in rows:
        error: dict[str, Any] = {
            "index": r.idx,
            "id": r.item_id,
            "code": r.code,
            "field": r.field,
            "message": r.message,
        }
        if r.line is not None:  # imports say where in the file
            error["line"] = r.line
            error["column"] = r.column
        errors.append(error)
    return errors, int(total)


def _input_value(raw: bytes) -> Any:
    # The input as it came, ready to resubmit; text that was not JSON (or is
    # nested past what a response may hold) comes back as a string, so that
    # the list itself stays valid JSON.
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return raw.decode("utf-8", "replace")
    if too_deep(value, MAX_JSON_DEPTH):
        return raw.decode("utf-8", "replace")
    return value


def failed_inputs(
    conn: sa.Connection,
    job_id: str,
    limit: int,
    offset: int,
    max_bytes: int | None = None,
) -> tuple[list[Any], int]:
    e = job_errors.c
    total = conn.execute(
        sa.select(sa.func.count()).select_from(job_errors).where(e.job_id == job_id)
    ).scalar_one()
    rows = conn.execute(
        sa.select(e.input)
        .where(e.job_id == job_id)
        .order_by(e.idx)
        .limit(limit)
        .offset(offset)
    )
    inputs: list[Any] = []
    size = 0
    for (raw,) in rows:
        size += len(raw)
        if max_bytes is not None and inputs and size > max_bytes:
            break
        inputs.append(_input_value(raw))
    return inputs, int(total)
