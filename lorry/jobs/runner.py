"""Running chunks: claim, prepare outside the transaction, apply inside it.

The effect of a chunk is exactly once although delivery is at least once: a
chunk's writes, its per-item errors, its counts and its done mark commit in
one transaction, guarded by the lease, so a chunk that died rolled back and a
chunk that is done is never applied again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.clock import now_us
from lorry.config import Settings
from lorry.jobs import (
    control,
    create,
    destroy,
    export,
    imports,
    migrate,
    run_limits,
    update,
)
from lorry.jobs.context import ChunkOutcome, JobContext, Prepared, schema_key
from lorry.jobs.model import (
    ACTIVE_STATUSES,
    MAX_ATTEMPTS,
    ChunkInput,
    Claim,
    JobStopped,
    LeaseLost,
    decode_entries,
)
from lorry.jobs.options import expiry
from lorry.store import item_types as type_store
from lorry.store.db import Database
from lorry.store.tables import job_chunks, job_errors, jobs

__all__ = [
    "LeaseLost",
    "PreparedClaim",
    "claim",
    "iter_prepared",
    "load_context",
    "merge_details",
    "prepare_claim",
    "recover",
    "release",
    "release_owner",
    "run_claim",
    "runs_alone",
]

log = logging.getLogger(__name__)

_KINDS: dict[
    str,
    tuple[
        Callable[[JobContext, ChunkInput], Prepared],
        Callable[[sa.Connection, JobContext, Prepared], ChunkOutcome],
    ],
] = {
    "bulk_create": (create.prepare, create.apply),
    "bulk_update": (update.prepare, update.apply),
    "bulk_destroy": (destroy.prepare, destroy.apply),
    "import": (imports.prepare, imports.apply),
    "migrate": (migrate.prepare, migrate.apply),
}
#: Kinds that run a whole claim their own way instead of prepare and apply:
#: an export reads and writes its file outside the write lock, and returns
#: the job's final status.
_OWN_RUNS: dict[str, Callable[[Database, Settings, Claim], str]] = {
    "export": export.run,
}
_encode_output = msgspec.msgpack.Encoder().encode
_decode_lines = msgspec.msgpack.Decoder(list[int]).decode
_CANDIDATES = 64


def claim(db: Database, settings: Settings, owner: str) -> Claim | None:
    """Lease the next runnable chunks: consecutive ones of one job."""
    with db.write() as conn:
        return _claim_in(conn, settings, owner)


def _claim_in(conn: sa.Connection, settings: Settings, owner: str) -> Claim | None:
    now = now_us()
    turns = _turns(conn, settings, now)
    for job in turns:
        # A job past its time-out ends here rather than getting one more
        # claim.
        if control.over_deadline(job.options, job.started_at, now):
            control.check_running(conn, job.id, settings.job_retention_days)
            continue
        rows = _candidates(conn, job, owner, now)
        if rows:
            # While other jobs wait for their turn, one turn is a share of a
            # full transaction, so that a round of turns takes about as long
            # as one transaction of a job running alone.
            share = max(settings.txn_items // len(turns), 1)
            return _lease(conn, settings, owner, job, rows, share, now)
    return None


def _turns(conn: sa.Connection, settings: Settings, now: int) -> list[Any]:
    """The active jobs that have a chunk to run, in the order they take
    turns: higher priority first, then the job whose last claim is oldest
    (a job never claimed first of all), then the oldest job.

    A queued job whose token already runs its limit of jobs waits; a job in
    progress always gets its turns.
    """
    j, c = jobs.c, job_chunks.c
    # Two probes of the (status, job_id) index, not a walk through the job's
    # chunks, most of which may be done.
    runnable = sa.or_(
        sa.exists().where(c.status == "pending", c.job_id == j.id),
        sa.exists().where(c.status == "running", c.job_id == j.id, c.lease_until < now),
    )
    query = (
        sa.select(j.id, j.kind, j.options, j.started_at)
        .where(j.status.in_(ACTIVE_STATUSES), runnable)
        .order_by(
            j.priority.desc(),
            sa.func.coalesce(j.last_claimed_at, 0),
            j.created_at,
            j.id,
        )
        .limit(_CANDIDATES)
    )
    limit = settings.max_running_jobs_per_token
    if limit:
        query = query.where(
            sa.or_(
                j.status == "in_progress",
                j.token_id.is_(None),
                _running_of_token(j.token_id) < limit,
            )
        )
    return list(conn.execute(query).all())


def _running_of_token(token_id: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
    other = jobs.alias("other")
    return (
        sa.select(sa.func.count())
        .select_from(other)
        .where(other.c.status == "in_progress", other.c.token_id == token_id)
        .scalar_subquery()
    )


def _lease(
    conn: sa.Connection,
    settings: Settings,
    owner: str,
    job: Any,
    rows: list[Any],
    share: int,
    now: int,
) -> Claim | None:
    """Lease consecutive chunks of a job, up to ``share`` items."""
    c, j = job_chunks.c, jobs.c
    whole = run_limits.is_atomic(job.options)
    if whole:
        # All or nothing: every chunk of the job in one claim, whatever its
        # size, because they are applied in one transaction.
        rows = list(conn.execute(_chunk_rows(job.id).where(_claimable(now))).all())
    seqs: list[int] = []
    total = 0
    for row in rows:
        if seqs and row.seq != seqs[-1] + 1:
            break
        if seqs and total + row.item_count > share and not whole:
            break
        if row.attempts >= MAX_ATTEMPTS:
            _fail(
                conn,
                settings,
                job.id,
                "chunk_failed",
                f"chunk {row.seq} failed {row.attempts} times; giving up",
                {"chunk": row.seq},
            )
            return None
        seqs.append(row.seq)
        total += row.item_count
    conn.execute(
        sa.update(job_chunks)
        .where(c.job_id == job.id, c.seq.in_(seqs))
        .values(
            status="running",
            lease_owner=owner,
            lease_until=now + settings.lease_seconds * 1_000_000,
        )
    )
    conn.execute(sa.update(jobs).where(j.id == job.id).values(last_claimed_at=now))
    conn.execute(
        sa.update(jobs)
        .where(j.id == job.id, j.status == "queued")
        .values(status="in_progress", started_at=now, updated_at=now)
    )
    return Claim(job.id, job.kind, job.options, tuple(seqs), owner)


def _claimable(now: int) -> sa.ColumnElement[bool]:
    c = job_chunks.c
    return sa.or_(
        c.status == "pending",
        sa.and_(c.status == "running", c.lease_until < now),
    )


def _chunk_rows(job_id: str) -> sa.Select[Any]:
    """A job's chunks, in the order they are to run."""
    c = job_chunks.c
    return (
        sa.select(c.seq, c.item_count, c.attempts)
        .where(c.job_id == job_id)
        .order_by(c.seq)
    )


def _candidates(conn: sa.Connection, job: Any, owner: str, now: int) -> list[Any]:
    c = job_chunks.c
    base = _chunk_rows(job.id).limit(_CANDIDATES)
    pending = conn.execute(base.where(c.status == "pending")).all()
    rows = _in_file_order(conn, job, pending, owner, now)
    if not rows:
        expired = base.where(c.status == "running", c.lease_until < now)
        rows = _in_file_order(conn, job, conn.execute(expired).all(), owner, now)
    return rows


def _in_file_order(
    conn: sa.Connection, job: Any, rows: Sequence[Any], owner: str, now: int
) -> list[Any]:
    """Drop the chunks of an import that another worker's earlier chunks must
    precede: an import's chunks are written in file order, because a file
    read back from an export links to items written before, often in an
    earlier chunk. (One worker writes its own claims in order; a dead
    worker's chunks are run again before any after them.)"""
    if job.kind != "import" or not rows:
        return list(rows)
    c = job_chunks.c
    busy = conn.execute(
        sa.select(sa.func.min(c.seq)).where(
            c.job_id == job.id,
            c.status == "running",
            sa.or_(c.lease_until < now, c.lease_owner != owner),
        )
    ).scalar()
    return [r for r in rows if busy is None or r.seq <= busy]


def _chunk_inputs(db: Database, claim_: Claim) -> Iterator[ChunkInput]:
    """A claim's staged input, one chunk at a time (a claim may be large)."""
    c = job_chunks.c
    for seq in claim_.seqs:
        with db.read() as conn:
            row = conn.execute(
                sa.select(c.first_index, c.input, c.lines).where(
                    c.job_id == claim_.job_id, c.seq == seq
                )
            ).one()
        lines = None if row.lines is None else _decode_lines(row.lines)
        yield ChunkInput(seq, row.first_index, decode_entries(row.input), lines)


def load_context(db: Database, claim_: Claim) -> JobContext:
    with db.read() as conn:
        types = type_store.load_all(conn)
    return JobContext.build(
        claim_.job_id, claim_.kind, claim_.options, db.dialect, types
    )


@dataclass(slots=True)
class PreparedClaim:
    """A claim's chunks after the work that needs no write lock."""

    ctx: JobContext
    prepared: list[Prepared]
    seconds: float


def iter_prepared(db: Database, claim_: Claim, ctx: JobContext) -> Iterator[Prepared]:
    """Load, parse and validate a claim's chunks one by one (no lock, no writes)."""
    prepare, _apply = _KINDS[claim_.kind]
    for chunk in _chunk_inputs(db, claim_):
        yield prepare(ctx, chunk)


def prepare_claim(db: Database, claim_: Claim) -> PreparedClaim:
    """Load, parse and validate a claim's chunks (no lock, no writes)."""
    started = time.perf_counter()
    ctx = load_context(db, claim_)
    prepared = list(iter_prepared(db, claim_, ctx))
    return PreparedClaim(ctx, prepared, time.perf_counter() - started)


def run_claim(
    db: Database,
    settings: Settings,
    claim_: Claim,
    ready: PreparedClaim | None = None,
    *,
    claim_next: bool = True,
) -> Claim | None:
    """Apply claimed chunks in one transaction; on failure, release them.

    ``ready`` is the claim already prepared elsewhere (lorry.engine). With
    ``claim_next``, returns the worker's next claim, leased in that same
    transaction: a worker that had to queue for the write lock again just to
    claim would validate its next chunks only after another worker's write,
    not during it.
    """
    try:
        if claim_.kind in _OWN_RUNS:
            return _run_own(db, settings, claim_, claim_next)
        if run_limits.is_atomic(claim_.options):
            return _run_atomic(db, settings, claim_, claim_next)
        return _run(db, settings, claim_, ready, claim_next)
    except JobStopped as exc:
        log.info(
            "job %s is %s: chunks %s stopped, their work discarded",
            claim_.job_id,
            exc.status,
            _span(claim_.seqs),
            extra={"action": "chunk_stopped", "job_id": claim_.job_id},
        )
    except LeaseLost:
        log.warning(
            "job %s chunks %s: lease lost, results discarded",
            claim_.job_id,
            _span(claim_.seqs),
            extra={"action": "chunk_lease_lost", "job_id": claim_.job_id},
        )
    except Exception:
        log.exception(
            "job %s chunks %s failed; they will run again",
            claim_.job_id,
            _span(claim_.seqs),
            extra={"action": "chunk_error", "job_id": claim_.job_id},
        )
        release(db, claim_)
    return None


def runs_alone(kind: str) -> bool:
    """Whether a kind's claims run on their own (no preparing ahead)."""
    return kind in _OWN_RUNS


def _run_own(
    db: Database, settings: Settings, claim_: Claim, claim_next: bool
) -> Claim | None:
    """Run a claim of a kind with its own run; only its bookkeeping takes
    the write lock, briefly."""
    _count_attempt(db, claim_)
    try:
        ended = _OWN_RUNS[claim_.kind](db, settings, claim_)
    except export.ExportFailed as exc:
        with db.write() as conn:
            _fail(conn, settings, claim_.job_id, exc.code, exc.message, {})
        ended = "failed"
    log.info(
        "job %s %s",
        claim_.job_id,
        ended,
        extra={"action": "job_finished", "job_id": claim_.job_id},
    )
    return claim(db, settings, claim_.owner) if claim_next else None


def _span(seqs: tuple[int, ...]) -> str:
    return f"{seqs[0]}-{seqs[-1]}" if len(seqs) > 1 else str(seqs[0])


def _run(
    db: Database,
    settings: Settings,
    claim_: Claim,
    ready: PreparedClaim | None,
    claim_next: bool,
) -> Claim | None:
    _prepare, apply = _KINDS[claim_.kind]
    # Parsing and validating need no lock: done before the write transaction,
    # they overlap with another worker's writes.
    ready = ready or prepare_claim(db, claim_)
    ctx = ready.ctx

    prepared_at = time.perf_counter()
    _count_attempt(db, claim_)
    following = None
    with db.write() as conn:
        locked_at = time.perf_counter()
        # Checked under the write lock that a cancel takes too: a job
        # cancelled or timed out while this batch was prepared gets no write.
        stopped = control.check_running(
            conn, claim_.job_id, settings.job_retention_days
        )
        if stopped is None:
            if schema_key(type_store.load_all(conn)) != schema_key(ctx.types):
                # An item type changed after this batch was validated:
                # validate it again, under the lock, against what is stored.
                ready = prepare_claim(db, claim_)
                ctx = ready.ctx
            ctx.now = now_us()
            # Keys are reserved afresh in each transaction: others wrote since.
            ctx.scratch.pop(create.ROW_KEYS, None)
            outcomes = _apply_within_budget(conn, apply, ctx, ready.prepared)
            ended = _record(conn, ctx, claim_, outcomes, settings)
        if claim_next:
            following = _claim_in(conn, settings, claim_.owner)
    committed_at = time.perf_counter()
    if stopped is not None:
        log.info(
            "job %s is %s: chunks %s not run",
            claim_.job_id,
            stopped,
            _span(claim_.seqs),
            extra={
                "action": "chunk_stopped",
                "job_id": claim_.job_id,
                "chunks": list(claim_.seqs),
            },
        )
        return following

    applied = sum(len(o.applied) for o in outcomes)
    failed = sum(len(o.failures) for o in outcomes)
    log.info(
        "job %s chunks %s done: %d applied, %d failed; prepare %.3f s, "
        "lock wait %.3f s, write %.3f s",
        claim_.job_id,
        _span(tuple(o.seq for o in outcomes)),
        applied,
        failed,
        ready.seconds,
        locked_at - prepared_at,
        committed_at - locked_at,
        extra={
            "action": "chunk_done",
            "job_id": claim_.job_id,
            "chunks": list(claim_.seqs),
            "prepare_seconds": ready.seconds,
            "lock_wait_seconds": locked_at - prepared_at,
            "write_seconds": committed_at - locked_at,
        },
    )
    if ended is not None:
        log.info(
            "job %s %s",
            claim_.job_id,
            ended,
            extra={"action": "job_finished", "job_id": claim_.job_id},
        )
    return following


def _still_active(conn: sa.Connection, claim_: Claim) -> bool:
    """Whether the claim's job may still run; if it ended meanwhile (it
    failed, say, while this claim was leased), its chunks are given back
    unrun: they will never be run."""
    status = conn.execute(
        sa.select(jobs.c.status).where(jobs.c.id == claim_.job_id)
    ).scalar()
    if status in ACTIVE_STATUSES:
        return True
    _unlease(conn, claim_, claim_.seqs)
    log.info(
        "job %s is %s; chunks %s not run",
        claim_.job_id,
        status,
        _span(claim_.seqs),
        extra={"action": "chunks_dropped", "job_id": claim_.job_id},
    )
    return False


def _unlease(conn: sa.Connection, claim_: Claim, seqs: Sequence[int]) -> None:
    c = job_chunks.c
    conn.execute(
        sa.update(job_chunks)
        .where(
            c.job_id == claim_.job_id,
            c.seq.in_(seqs),
            c.status == "running",
            c.lease_owner == claim_.owner,
        )
        .values(status="pending", lease_owner=None, lease_until=None)
    )


def _apply_within_budget(
    conn: sa.Connection,
    apply: Callable[[sa.Connection, JobContext, Prepared], ChunkOutcome],
    ctx: JobContext,
    prepared: list[Prepared],
) -> list[ChunkOutcome]:
    """Apply a claim's chunks in order; with an error budget, stop after the
    chunk that exceeds it (a claim may hold many chunks)."""
    budget = run_limits.Budget.of(ctx.options)
    if budget is None:
        return [_apply(conn, apply, ctx, p) for p in prepared]
    j = jobs.c
    before = conn.execute(
        sa.select(j.failed_items, j.processed_items).where(j.id == ctx.job_id)
    ).one()
    outcomes: list[ChunkOutcome] = []
    for p in prepared:
        outcomes.append(_apply(conn, apply, ctx, p))
        failed, processed = run_limits.processed(outcomes)
        failed += before.failed_items
        if budget.breach(failed, processed + before.processed_items):
            break
    return outcomes


def _run_atomic(
    db: Database, settings: Settings, claim_: Claim, claim_next: bool
) -> Claim | None:
    """Apply a whole atomic job in one transaction, or nothing of it.

    Each chunk is read and validated under the lock, one after the other,
    so that a large job is never held whole in memory; every chunk is
    applied even after a failure, so that the job reports every failing
    item, and the savepoint is then rolled back.
    """
    _prepare, apply = _KINDS[claim_.kind]
    _count_attempt(db, claim_)
    following = None
    started = time.perf_counter()
    with db.write() as conn:
        # A job past its time-out ends here, and its chunks are given back.
        control.check_running(conn, claim_.job_id, settings.job_retention_days)
        if not _still_active(conn, claim_):
            return _claim_in(conn, settings, claim_.owner) if claim_next else None
        ctx = load_context(db, claim_)
        ctx.now = now_us()
        savepoint = conn.begin_nested()
        outcomes = [_apply(conn, apply, ctx, p) for p in iter_prepared(db, claim_, ctx)]
        failed, _processed = run_limits.processed(outcomes)
        undone = 0
        if failed:
            savepoint.rollback()
            undone = run_limits.roll_back(outcomes)
        else:
            savepoint.commit()
        ended = _record(conn, ctx, claim_, outcomes, settings)
        if claim_next:
            following = _claim_in(conn, settings, claim_.owner)
    log.info(
        "job %s chunks %s %s: %d applied, %d failed, %d rolled back; %.3f s",
        claim_.job_id,
        _span(claim_.seqs),
        "rolled back" if failed else "done",
        sum(len(o.applied) for o in outcomes),
        failed,
        undone,
        time.perf_counter() - started,
        extra={
            "action": "chunk_rolled_back" if failed else "chunk_done",
            "job_id": claim_.job_id,
            "chunks": list(claim_.seqs),
        },
    )
    if ended is not None:
        log.info(
            "job %s %s",
            claim_.job_id,
            ended,
            extra={"action": "job_finished", "job_id": claim_.job_id},
        )
    return following


def _apply(
    conn: sa.Connection,
    apply: Callable[[sa.Connection, JobContext, Prepared], ChunkOutcome],
    ctx: JobContext,
    prepared: Prepared,
) -> ChunkOutcome:
    if not ctx.options.get("dry_run"):
        outcome = apply(conn, ctx, prepared)
    else:
        # A dry run does every check the real run does, against the store
        # as it is, and keeps none of the writes: only counts and errors.
        savepoint = conn.begin_nested()
        try:
            outcome = apply(conn, ctx, prepared)
        finally:
            savepoint.rollback()
    if prepared.lines is not None:
        first, lines = prepared.first_index, prepared.lines
        outcome.lines = {i: lines[i - first] for i, *_rest in outcome.failures}
        outcome.columns = prepared.columns
    if prepared.notes:
        outcome.notes = {**(outcome.notes or {}), **prepared.notes}
    return outcome


def _count_attempt(db: Database, claim_: Claim) -> None:
    """Record, in its own commit, that these chunks are about to be written.

    Counted here, not when leased: a worker leases its next batch before it
    writes the current one, and a batch that never reached its write did not
    fail. A batch that kills its worker every time it is written does fail,
    after MAX_ATTEMPTS.
    """
    c = job_chunks.c
    with db.write() as conn:
        conn.execute(
            sa.update(job_chunks)
            .where(
                c.job_id == claim_.job_id,
                c.seq.in_(claim_.seqs),
                c.lease_owner == claim_.owner,
            )
            .values(attempts=c.attempts + 1)
        )


def _record(
    conn: sa.Connection,
    ctx: JobContext,
    claim_: Claim,
    outcomes: list[ChunkOutcome],
    settings: Settings,
) -> str | None:
    """Commit-side bookkeeping of a batch; returns the job's final status if
    this batch ended it."""
    c = job_chunks.c
    dry = bool(ctx.options.get("dry_run"))
    # One statement for all the batch's chunks: each must still be ours.
    done = conn.execute(
        sa.update(job_chunks)
        .where(
            c.job_id == claim_.job_id,
            c.seq == sa.bindparam("b_seq"),
            c.status == "running",
            c.lease_owner == claim_.owner,
        )
        .values(
            status="done",
            output=sa.bindparam("b_output"),
            successful_items=sa.bindparam("b_ok"),
            failed_items=sa.bindparam("b_failed"),
            skipped_items=sa.bindparam("b_skipped"),
            finished_at=ctx.now,
            lease_until=None,
        ),
        [
            {
                "b_seq": o.seq,
                # A dry run wrote nothing: there are no items to show.
                "b_output": _encode_output([] if dry else o.applied),
                "b_ok": len(o.applied),
                "b_failed": len(o.failures),
                "b_skipped": o.skipped,
            }
            for o in outcomes
        ],
    )
    if done.rowcount != len(outcomes):
        raise LeaseLost(claim_.job_id, outcomes[0].seq)
    error_rows: list[dict[str, Any]] = []
    for o in outcomes:
        lines, columns = o.lines or {}, o.columns or {}
        error_rows.extend(
            {
                "job_id": claim_.job_id,
                "idx": index,
                "chunk_seq": o.seq,
                "item_id": item_id,
                "code": failure.code,
                "field": failure.field,
                "line": lines.get(index),
                "column": columns.get(failure.field) if failure.field else None,
                "message": failure.message,
                "input": raw,
            }
            for index, item_id, failure, raw in o.failures
        )
    if error_rows:
        conn.execute(sa.insert(job_errors), error_rows)

    applied = sum(len(o.applied) for o in outcomes)
    failed = sum(len(o.failures) for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    j = jobs.c
    conn.execute(
        sa.update(jobs)
        .where(j.id == claim_.job_id)
        .values(
            processed_items=j.processed_items + applied + failed + skipped,
            successful_items=j.successful_items + applied,
            failed_items=j.failed_items + failed,
            skipped_items=j.skipped_items + skipped,
            created_items=j.created_items + sum(o.created for o in outcomes),
            updated_items=j.updated_items + sum(o.updated for o in outcomes),
            chunks_done=j.chunks_done + len(outcomes),
            updated_at=ctx.now,
        )
    )
    notes = [o.notes for o in outcomes if o.notes]
    if notes:
        merge_details(conn, claim_.job_id, notes)
    row = conn.execute(
        sa.select(
            j.chunks_done, j.chunks_total, j.failed_items, j.processed_items, j.status
        ).where(j.id == claim_.job_id)
    ).one()
    if row.status not in ACTIVE_STATUSES:
        return None
    return _end_if_due(conn, ctx, claim_, outcomes, settings, row)


def _end_if_due(
    conn: sa.Connection,
    ctx: JobContext,
    claim_: Claim,
    outcomes: list[ChunkOutcome],
    settings: Settings,
    row: Any,
) -> str | None:
    """End the job if this batch was its last, or took it over its error
    budget; returns the final status, if so."""
    budget = run_limits.Budget.of(ctx.options)
    breach = budget and budget.breach(row.failed_items, row.processed_items)
    if budget and breach:
        applied = {o.seq for o in outcomes}
        _unlease(conn, claim_, [s for s in claim_.seqs if s not in applied])
        details = budget.details(row.failed_items, row.processed_items)
        message = f"{breach}; the job was stopped and its remaining items not run"
        _fail(
            conn,
            settings,
            claim_.job_id,
            run_limits.ERROR_BUDGET_EXCEEDED,
            message,
            details,
        )
        return "failed"
    if row.chunks_done < row.chunks_total:
        return None
    if run_limits.is_atomic(ctx.options) and row.failed_items:
        message = (
            f"{row.failed_items} of {row.processed_items} items failed; the job "
            "is atomic, so nothing was applied"
        )
        details = {"failed_items": row.failed_items}
        _fail(
            conn,
            settings,
            claim_.job_id,
            run_limits.ATOMIC_ROLLED_BACK,
            message,
            details,
        )
        return "failed"
    status = "completed_with_errors" if row.failed_items else "completed"
    ctx.now = now_us()  # the end of the work, not the start of this batch
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == claim_.job_id)
        .values(
            status=status,
            finished_at=ctx.now,
            expires_at=expiry(settings, ctx.options, ctx.now),
        )
    )
    return status


def merge_details(
    conn: sa.Connection, job_id: str, notes: list[dict[str, Any]]
) -> None:
    """Add chunks' notes to a job's details: lists united, numbers added."""
    j = jobs.c
    details = dict(
        conn.execute(sa.select(j.details).where(j.id == job_id)).scalar_one() or {}
    )
    for note in notes:
        for key, value in note.items():
            old = details.get(key)
            if isinstance(value, list) and isinstance(old, list):
                details[key] = old + [v for v in value if v not in old]
            elif isinstance(value, int) and isinstance(old, int):
                details[key] = old + value
            else:
                details[key] = value
    conn.execute(sa.update(jobs).where(j.id == job_id).values(details=details))


def release(db: Database, claim_: Claim) -> None:
    """Give claimed chunks back, unrun (a failed run, or a worker stopping)."""
    c = job_chunks.c
    with db.write() as conn:
        conn.execute(
            sa.update(job_chunks)
            .where(
                c.job_id == claim_.job_id,
                c.seq.in_(claim_.seqs),
                c.status == "running",
                c.lease_owner == claim_.owner,
            )
            .values(status="pending", lease_owner=None, lease_until=None)
        )


def release_owner(db: Database, owner: str) -> int:
    """Free the chunks leased to a worker known to be dead."""
    c = job_chunks.c
    with db.write() as conn:
        result = conn.execute(
            sa.update(job_chunks)
            .where(c.status == "running", c.lease_owner == owner)
            .values(status="pending", lease_owner=None, lease_until=None)
        )
    return int(result.rowcount or 0)


def _fail(
    conn: sa.Connection,
    settings: Settings,
    job_id: str,
    code: str,
    message: str,
    details: dict[str, Any],
) -> None:
    """End an active job as failed; it is kept as long as a finished one."""
    now = now_us()
    options = conn.execute(
        sa.select(jobs.c.options).where(jobs.c.id == job_id)
    ).scalar_one()
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status.in_(ACTIVE_STATUSES))
        .values(
            status="failed",
            error={"code": code, "message": message, "details": details},
            finished_at=now,
            updated_at=now,
            expires_at=expiry(settings, options or {}, now),
        )
    )
    log.error(
        "job %s failed: %s",
        job_id,
        message,
        extra={"action": "job_failed", "job_id": job_id},
    )


def recover(db: Database) -> int:
    """At start of the embedded server: chunks left running are run again.

    The embedded server is the only server on its database (it holds a
    lock file), so every running chunk belongs to a process that is gone.
    """
    with db.write() as conn:
        result = conn.execute(
            sa.update(job_chunks)
            .where(job_chunks.c.status == "running")
            .values(status="pending", lease_owner=None, lease_until=None)
        )
    count = int(result.rowcount or 0)
    if count:
        log.info(
            "%d chunks that were running when the server stopped will run again",
            count,
            extra={"action": "chunks_recovered"},
        )
    return count
