"""Bulk destroy: remove the items a chunk names."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.ids import is_id
from lorry.jobs.context import ChunkOutcome, JobContext, Prepared
from lorry.jobs.model import ChunkInput, PreFailed
from lorry.schema.validator import ItemFailure
from lorry.store import items as item_store

__all__ = ["apply", "prepare"]

_decode = msgspec.json.Decoder(Any).decode


def prepare(ctx: JobContext, chunk: ChunkInput) -> Prepared:
    prepared = Prepared(chunk.seq, [], [])
    index = chunk.first_index
    for entry in chunk.entries:
        if isinstance(entry, PreFailed):
            failure = ItemFailure(entry.code, entry.message)
            prepared.failures.append((index, None, failure, entry.raw))
            index += 1
            continue
        try:
            value = _decode(entry)
        except msgspec.DecodeError as exc:
            failure = ItemFailure("invalid_json", f"not valid JSON: {exc}")
            prepared.failures.append((index, None, failure, entry))
        else:
            if is_id(value):
                prepared.ids.append((index, value, entry))
            else:
                failure = ItemFailure("invalid_item", f"{value!r} is not an item id")
                prepared.failures.append((index, None, failure, entry))
        index += 1
    return prepared


def apply(conn: sa.Connection, ctx: JobContext, prepared: Prepared) -> ChunkOutcome:
    outcome = ChunkOutcome(prepared.seq, failures=list(prepared.failures))
    found = item_store.existing_ids(conn, [i[1] for i in prepared.ids])
    doomed: list[str] = []
    for index, item_id, raw in prepared.ids:
        if item_id in found:
            doomed.append(item_id)
            outcome.applied.append((index, item_id))
        else:
            failure = ItemFailure("not_found", f"no item has id {item_id!r}", "id")
            outcome.failures.append((index, item_id, failure, raw))
    item_store.delete_ids(conn, doomed)
    return outcome
