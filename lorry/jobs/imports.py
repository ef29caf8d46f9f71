"""Import jobs: records of a file become items, created or upserted.

The records were cut out of the file while it was uploaded (lorry.files);
here each becomes an item (lorry.jobs.import_records), is validated, and is
written by the bulk create path, or, with ``upsert_by``, by the bulk update
path when an item already holds its value of that unique field.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.jobs import create, update
from lorry.jobs.context import ChunkOutcome, JobContext, Prepared, decoded_entries
from lorry.jobs.import_records import Converted, RecordPlan
from lorry.jobs.links import Candidate
from lorry.jobs.model import ChunkInput
from lorry.jobs.record_json import decode_fast, decode_record, not_text
from lorry.schema.validator import ItemFailure, Valid
from lorry.store import items as item_store

__all__ = ["apply", "prepare"]

_PLANS: OrderedDict[tuple[str | None, int], RecordPlan] = OrderedDict()
_PLANS_LOCK = threading.Lock()


def _plan(ctx: JobContext) -> RecordPlan:
    # A plan learns each column's field once per job, not once per chunk.
    key = (ctx.job_id, id(ctx.validator))
    with _PLANS_LOCK:
        plan = _PLANS.get(key)
        if plan is None:
            plan = _PLANS[key] = RecordPlan(ctx.types, ctx.options)
            while len(_PLANS) > 16:
                _PLANS.popitem(last=False)
        return plan


def prepare(ctx: JobContext, chunk: ChunkInput) -> Prepared:
    plan = _plan(ctx)
    known_unknown = len(plan.unknown)
    prepared = Prepared(chunk.seq, [], [], first_index=chunk.first_index)
    prepared.lines = chunk.lines
    upsert = bool(ctx.options.get("upsert_by"))
    prefix = None if upsert else _item_prefix(plan, chunk)
    shape = "a record is an object of columns (or fields) and values"
    validate = ctx.validator.validate
    for index, raw, record in decoded_entries(
        chunk, prepared, _decode_lazily if prefix else decode_record, shape
    ):
        if prefix is not None:
            # Most rows are valid items but for their type: checked straight
            # from their bytes. Any other goes the whole way, for its error.
            fast = validate(prefix + raw[1:])
            if isinstance(fast, Valid):
                prepared.valids.append((index, fast, raw, None, None))
                continue
            try:
                record = decode_record(raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                failure = ItemFailure("invalid_json", f"not valid JSON: {exc}")
                prepared.failures.append((index, None, failure, raw))
                continue
        # msgspec refuses lone surrogates, but the lenient second reading of
        # a record it refused (for NaN or 1e999) takes them: never store one.
        if (b"\\ud" in raw or b"\\uD" in raw) and (key := not_text(record)):
            failure = ItemFailure(
                "invalid_value",
                f"{key!r} holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape "
                "without its pair), which is not text",
                key,
            )
            prepared.failures.append((index, None, failure, raw))
            continue
        converted = plan.convert(record)
        if isinstance(converted, ItemFailure):
            prepared.failures.append((index, None, converted, raw))
            continue
        result = ctx.validator.convert(converted.item)
        if isinstance(result, ItemFailure):
            prepared.failures.append((index, None, result, raw))
            continue
        prepared.valids.append((index, result, raw, converted.item_id, None))
        if upsert:
            prepared.records[index] = converted
    prepared.columns = plan.field_columns()
    if len(plan.unknown) > known_unknown or chunk.seq == 0:
        prepared.notes = {"unknown_columns": list(plan.unknown)}
    return prepared


def _decode_lazily(raw: bytes) -> None:
    """Records read from their bytes first: decoded only if that fails."""
    return None


def _item_prefix(plan: RecordPlan, chunk: ChunkInput) -> bytes | None:
    """The item prefix of a CSV chunk's records (see RecordPlan.item_prefix):
    they all have the header's columns, read off the first of them."""
    first = next((e for e in chunk.entries if isinstance(e, bytes)), None)
    if first is None or plan.default_type is None or not plan.from_text:
        return None
    try:
        columns = tuple(decode_fast(first))
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return plan.item_prefix(columns)


def _upsert_value(valid: Valid, key: str) -> Any:
    stored = (
        msgspec.json.decode(valid.data)
        if valid.data is not None
        else msgspec.to_builtins(valid.materialize())
    )
    return stored.get(key)


def _merge(outcome: ChunkOutcome, part: ChunkOutcome) -> None:
    outcome.applied.extend(part.applied)
    outcome.failures.extend(part.failures)
    outcome.skipped += part.skipped


def apply(conn: sa.Connection, ctx: JobContext, prepared: Prepared) -> ChunkOutcome:
    key = ctx.options.get("upsert_by")
    if not key:
        outcome = create.apply(conn, ctx, prepared)
        outcome.created = len(outcome.applied)
        return outcome

    outcome = ChunkOutcome(prepared.seq, failures=list(prepared.failures))
    pending = prepared.valids
    # Two records with the same value: the first creates the item and the
    # second updates it, so they are written in rounds, first ones first.
    while pending:
        this_round: list[Candidate] = []
        later: list[Candidate] = []
        seen: set[Any] = set()
        values: dict[int, Any] = {}
        for candidate in pending:
            value = _upsert_value(candidate[1], key)
            if value is not None and value in seen:
                later.append(candidate)
                continue
            seen.add(value)
            values[candidate[0]] = value
            this_round.append(candidate)
        type_pk = this_round[0][1].compiled.type_def.pk
        found = item_store.lookup_by_field(
            conn, ctx.dialect, type_pk, key, [v for v in seen if v is not None]
        )
        creates = [c for c in this_round if values[c[0]] not in found]
        updates: list[tuple[int, str, dict[str, Any], int | None, bytes]] = [
            (
                index,
                found[values[index]],
                _attributes(prepared.records[index]),
                None,
                raw,
            )
            for index, _valid, raw, _id, _given in this_round
            if values[index] in found
        ]
        made = create.apply(conn, ctx, Prepared(prepared.seq, creates, []))
        changed = update.apply(
            conn, ctx, Prepared(prepared.seq, [], [], updates=updates)
        )
        outcome.created += len(made.applied)
        outcome.updated += len(changed.applied)
        _merge(outcome, made)
        _merge(outcome, changed)
        pending = later
    outcome.applied.sort()
    return outcome


def _attributes(converted: Converted) -> dict[str, Any]:
    return {k: v for k, v in converted.item.items() if k != "item_type"}
