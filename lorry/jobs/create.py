"""Bulk create: validate a chunk's items, resolve links, insert."""

from __future__ import annotations

from collections import Counter

import msgspec
import sqlalchemy as sa

from lorry.ids import is_id, new_ids
from lorry.jobs.context import ChunkOutcome, JobContext, Prepared
from lorry.jobs.links import Candidate, link_values, resolve_links
from lorry.jobs.model import ChunkInput, PreFailed, decode_entries
from lorry.schema.validator import ItemFailure, Valid
from lorry.store import items as item_store
from lorry.store.dialect import ItemRow
from lorry.store.tables import job_chunks

__all__ = ["apply", "explain_conflict", "insert", "prepare"]

_encode = msgspec.json.Encoder().encode
#: JobContext.scratch: the next free row key of each type in this transaction.
ROW_KEYS = "row_keys"


def prepare(ctx: JobContext, chunk: ChunkInput) -> Prepared:
    prepared = Prepared(chunk.seq, [], [])
    validate = ctx.validator.validate
    index = chunk.first_index
    for entry in chunk.entries:
        if isinstance(entry, PreFailed):
            failure = ItemFailure(entry.code, entry.message)
            prepared.failures.append((index, entry.item_id, failure, entry.raw))
        else:
            result = validate(entry)
            if isinstance(result, Valid):
                prepared.valids.append((index, result, entry, None, None))
            else:
                prepared.failures.append((index, None, result, entry))
        index += 1
    return prepared


def explain_conflict(conn: sa.Connection, ctx: JobContext, valid: Valid) -> ItemFailure:
    """Say which unique value of an item that the database refused is taken."""
    # The stored form of the values is what the unique index compares.
    stored = (
        msgspec.json.decode(valid.data)
        if valid.data is not None
        else msgspec.to_builtins(valid.materialize())
    )
    for key in valid.compiled.unique_keys:
        value = stored.get(key)
        if value is None:
            continue
        holder = item_store.find_holder(
            conn, ctx.dialect, valid.compiled.type_def.pk, key, value
        )
        if holder is not None:
            same_job = ctx.job_id is not None and holder[1] == ctx.job_id
            where = " earlier in this job" if same_job else ""
            return ItemFailure(
                "not_unique",
                f"{key} {value!r} is already used by item {holder[0]}{where}",
                key,
            )
    return ItemFailure("not_unique", "a unique value is already used")


def _with_inputs(
    conn: sa.Connection, ctx: JobContext, outcome: ChunkOutcome
) -> ChunkOutcome:
    """Fill in the raw input of failures whose input did not travel along."""
    if ctx.job_id is None or all(raw for *_rest, raw in outcome.failures):
        return outcome
    outcome.failures = [
        (index, item_id, failure, raw or _staged_input(conn, ctx.job_id, index))
        for index, item_id, failure, raw in outcome.failures
    ]
    return outcome


def _staged_input(conn: sa.Connection, job_id: str, index: int) -> bytes:
    c = job_chunks.c
    row = conn.execute(
        sa.select(c.first_index, c.input)
        .where(c.job_id == job_id, c.first_index <= index)
        .order_by(c.first_index.desc())
        .limit(1)
    ).one()
    entry = decode_entries(row.input)[index - row.first_index]
    return entry.raw if isinstance(entry, PreFailed) else entry


def _row_keys(
    conn: sa.Connection, ctx: JobContext, candidates: list[Candidate]
) -> list[int]:
    # The chunks of a claim are written in one transaction, under the write
    # lock: after the first, each type's next free key is known here.
    cursor: dict[int, int] = ctx.scratch.setdefault(ROW_KEYS, {})
    counts = Counter(c[1].compiled.type_def.pk for c in candidates)
    free: dict[int, range] = {}
    for pk, n in counts.items():
        start = cursor.get(pk)
        if start is None:
            keys = item_store.next_keys(conn, pk, n)
        elif start + n > item_store.type_range(pk)[1]:
            raise OverflowError(f"item type {pk} has no row keys left")
        else:
            keys = range(start, start + n)
        cursor[pk] = keys.stop
        free[pk] = keys
    if len(free) == 1:
        return list(next(iter(free.values())))
    taken = {pk: iter(keys) for pk, keys in free.items()}
    return [next(taken[c[1].compiled.type_def.pk]) for c in candidates]


def _given_ids(
    conn: sa.Connection,
    ctx: JobContext,
    candidates: list[Candidate],
    outcome: ChunkOutcome,
) -> list[Candidate]:
    """Items that bring their own id (an import of an export) keep it, unless
    it is not a Lorry id or is taken."""
    given = [c[3] for c in candidates if c[3] is not None]
    if not given:
        return candidates
    taken = item_store.existing_ids(conn, [i for i in given if is_id(i)])
    skip = bool(ctx.options.get("skip_duplicates"))
    kept: list[Candidate] = []
    for candidate in candidates:
        index, _valid, raw, item_id, _given = candidate
        if item_id is None:
            kept.append(candidate)
        elif not is_id(item_id):
            failure = ItemFailure(
                "invalid_value",
                f"id {item_id!r} is not a Lorry id (26 characters, as Lorry "
                "makes them); map that column to a field, or leave it out",
                "id",
            )
            outcome.failures.append((index, None, failure, raw))
        elif item_id in taken and skip:
            outcome.skipped += 1
        elif item_id in taken:
            failure = ItemFailure(
                "not_unique", f"id {item_id} is already used by an item", "id"
            )
            outcome.failures.append((index, item_id, failure, raw))
        else:
            kept.append(candidate)
    return kept


def apply(conn: sa.Connection, ctx: JobContext, prepared: Prepared) -> ChunkOutcome:
    outcome = ChunkOutcome(prepared.seq, failures=list(prepared.failures))
    # Ids first: a link to an item of this chunk holds only if its id does.
    candidates = _given_ids(conn, ctx, prepared.valids, outcome)
    candidates, link_failures = resolve_links(conn, ctx, candidates)
    outcome.failures.extend(link_failures)
    return insert(conn, ctx, candidates, outcome)


def insert(
    conn: sa.Connection,
    ctx: JobContext,
    candidates: list[Candidate],
    outcome: ChunkOutcome,
) -> ChunkOutcome:
    """Write validated items whose links hold; a unique value already taken
    fails its item (or skips it, with skip_duplicates)."""
    fresh = iter(new_ids(len(candidates)))
    ids = [c[3] or next(fresh) for c in candidates]
    keys = _row_keys(conn, ctx, candidates)
    now, job_id = ctx.now, ctx.job_id
    rows: list[ItemRow] = []
    for key, item_id, (_index, valid, _raw, _id, _given) in zip(
        keys, ids, candidates, strict=True
    ):
        # 0 is a timestamp like any other (1970-01-01): no `or` here.
        created = now if valid.created_at is None else valid.created_at
        updated = created if valid.updated_at is None else valid.updated_at
        data = valid.data or _encode(valid.materialize()).decode()
        rows.append((key, item_id, valid.compiled.type_def.pk, data, created, updated))
    inserted = item_store.insert_rows(conn, ctx.dialect, rows, job_id)

    if inserted == len(rows):
        outcome.applied = [
            (c[0], item_id) for c, item_id in zip(candidates, ids, strict=True)
        ]
        return _with_inputs(conn, ctx, outcome)

    # Row keys are fresh, so a row holding one is a row this insert wrote.
    stored = item_store.existing_keys(conn, keys)
    skip = bool(ctx.options.get("skip_duplicates"))
    for key, item_id, (index, valid, raw, _id, _given) in zip(
        keys, ids, candidates, strict=True
    ):
        if key in stored:
            outcome.applied.append((index, item_id))
        elif skip:
            outcome.skipped += 1
        else:
            failure = explain_conflict(conn, ctx, valid)
            if _id is not None and failure.field is None:
                failure = ItemFailure(
                    "not_unique", f"id {_id} appears earlier in this job", "id"
                )
            outcome.failures.append((index, None, failure, raw))
    _drop_dangling(conn, candidates, ids, outcome)
    return _with_inputs(conn, ctx, outcome)


def _drop_dangling(
    conn: sa.Connection,
    candidates: list[Candidate],
    ids: list[str],
    outcome: ChunkOutcome,
) -> None:
    """Undo the items that link to an item of their chunk that was refused."""
    written = dict(outcome.applied)
    refused = {
        item_id
        for c, item_id in zip(candidates, ids, strict=True)
        if c[3] is not None and c[0] not in written
    }
    by_index = {c[0]: c for c in candidates}
    while refused:
        dangling = [
            index
            for index in written
            if by_index[index][1].compiled.links
            and not refused.isdisjoint(link_values(by_index[index][1]))
        ]
        if not dangling:
            break
        item_store.delete_ids(conn, [written[i] for i in dangling])
        refused = {written.pop(i) for i in dangling}
        for index in dangling:
            failure = ItemFailure(
                "link_not_found",
                "links to an item given with it that was not written",
            )
            outcome.failures.append((index, None, failure, by_index[index][2]))
    outcome.applied = sorted(written.items())
