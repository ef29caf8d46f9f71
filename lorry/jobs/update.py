"""Bulk update: merge each item's new attributes, validate the whole, write."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.jobs.context import ChunkOutcome, JobContext, Prepared, decoded_entries
from lorry.jobs.create import explain_conflict
from lorry.jobs.links import Candidate, resolve_links
from lorry.jobs.model import ChunkInput
from lorry.schema.validator import ItemFailure
from lorry.store import items as item_store

__all__ = ["apply", "prepare"]

_encode = msgspec.json.Encoder().encode
_decode_data = msgspec.json.Decoder(dict[str, Any]).decode


class UpdateEntry(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    attributes: dict[str, Any]
    meta: dict[str, Any] | None = None


_decode_entry = msgspec.json.Decoder(UpdateEntry).decode


def prepare(ctx: JobContext, chunk: ChunkInput) -> Prepared:
    prepared = Prepared(chunk.seq, [], [])
    shape = 'an update is {"id": ..., "attributes": {...}}'
    for index, entry, parsed in decoded_entries(chunk, prepared, _decode_entry, shape):
        version = (parsed.meta or {}).get("version")
        if version is not None and (
            not isinstance(version, int) or isinstance(version, bool)
        ):
            failure = ItemFailure(
                "invalid_value",
                f"meta.version must be an integer, not {version!r}",
                "meta.version",
            )
            prepared.failures.append((index, parsed.id, failure, entry))
        else:
            prepared.updates.append(
                (index, parsed.id, parsed.attributes, version, entry)
            )
    return prepared


def _merge(
    ctx: JobContext, state: item_store.ItemState, attributes: dict[str, Any]
) -> dict[str, Any] | ItemFailure:
    type_def = ctx.type_by_pk[state.type_pk]
    known = {f.api_key for f in type_def.fields}
    # Values of fields since removed from the type are left behind, so that a
    # schema change does not make every later update of the item fail.
    merged = {k: v for k, v in _decode_data(state.data).items() if k in known}
    given_type = attributes.get("item_type", type_def.api_key)
    if given_type != type_def.api_key:
        return ItemFailure(
            "invalid_value", "an update cannot change item_type", "item_type"
        )
    merged.update(attributes)
    merged["item_type"] = type_def.api_key
    return merged


def apply(conn: sa.Connection, ctx: JobContext, prepared: Prepared) -> ChunkOutcome:
    outcome = ChunkOutcome(prepared.seq, failures=list(prepared.failures))
    states = item_store.fetch_states(conn, [u[1] for u in prepared.updates])

    candidates: list[Candidate] = []
    versions: dict[int, int] = {}
    for index, item_id, attributes, expected, raw in prepared.updates:
        state = states.get(item_id)
        if state is None:
            failure = ItemFailure("not_found", f"no item has id {item_id!r}", "id")
            outcome.failures.append((index, item_id, failure, raw))
            continue
        if expected is not None and expected != state.version:
            failure = ItemFailure(
                "stale_version",
                f"item {item_id} is at version {state.version}, not {expected}",
                "meta.version",
            )
            outcome.failures.append((index, item_id, failure, raw))
            continue
        merged = _merge(ctx, state, attributes)
        result = (
            merged if isinstance(merged, ItemFailure) else ctx.validator.convert(merged)
        )
        if isinstance(result, ItemFailure):
            outcome.failures.append((index, item_id, result, raw))
            continue
        versions[index] = state.version + 1
        candidates.append((index, result, raw, item_id, frozenset(attributes)))

    candidates, link_failures = resolve_links(conn, ctx, candidates)
    outcome.failures.extend(link_failures)

    rows = [
        {
            "b_id": item_id,
            "b_data": _encode(valid.materialize()).decode(),
            "b_version": versions[index],
            "b_updated_at": ctx.now if valid.updated_at is None else valid.updated_at,
            "b_job": ctx.job_id,
        }
        for index, valid, _raw, item_id, _given in candidates
    ]
    broken = set(item_store.update_rows(conn, rows))
    for pos, (index, valid, raw, cand_id, _given) in enumerate(candidates):
        if pos in broken:
            failure = explain_conflict(conn, ctx, valid)
            outcome.failures.append((index, cand_id, failure, raw))
        else:
            assert cand_id is not None
            outcome.applied.append((index, cand_id))
    return outcome
