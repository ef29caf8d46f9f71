"""Bulk destroy: remove the items a chunk names."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.ids import is_id
from lorry.jobs.context import ChunkOutcome, JobContext, Prepared, decoded_entries
from lorry.jobs.model import ChunkInput
from lorry.schema.validator import ItemFailure
from lorry.store import items as item_store

__all__ = ["apply", "prepare"]

_decode = msgspec.json.Decoder(Any).decode


def prepare(ctx: JobContext, chunk: ChunkInput) -> Prepared:
    prepared = Prepared(chunk.seq, [], [])
    for index, entry, value in decoded_entries(chunk, prepared, _decode, "an id"):
        if is_id(value):
            prepared.ids.append((index, value, entry))
        else:
            failure = ItemFailure("invalid_item", f"{value!r} is not an item id")
            prepared.failures.append((index, None, failure, entry))
    return prepared


def _links_to(ctx: JobContext, type_pks: set[int]) -> list[tuple[int, str, bool]]:
    """(type, field, many) of every link field that may point at these types."""
    keys = {ctx.type_by_pk[pk].api_key for pk in type_pks if pk in ctx.type_by_pk}
    return [
        (t.pk, f.api_key, f.field_type == "links")
        for t in ctx.types
        for f in t.fields
        if f.field_type in ("link", "links")
        and keys & set(f.validators.item_types or ())
    ]


def _blocked(
    conn: sa.Connection, ctx: JobContext, found: dict[str, int], doomed: set[str]
) -> dict[str, list[str]]:
    """Items that others still link to: target id -> ids of the items linking.

    Links from items destroyed in the same chunk do not count, unless those
    items are themselves kept; hence the loop to a fixed point.
    """
    pairs: list[tuple[str, str]] = []
    for type_pk, key, many in _links_to(ctx, {found[i] for i in doomed}):
        pairs.extend(ctx.dialect.referrers(conn, type_pk, key, many, sorted(doomed)))
    blocked: dict[str, list[str]] = {}
    changed = True
    while changed:
        changed = False
        for target, referrer in pairs:
            survives = referrer not in doomed or referrer in blocked
            if not survives:
                continue
            holders = blocked.setdefault(target, [])
            if not holders:
                changed = True
            if referrer not in holders:
                holders.append(referrer)
    return blocked


def apply(conn: sa.Connection, ctx: JobContext, prepared: Prepared) -> ChunkOutcome:
    outcome = ChunkOutcome(prepared.seq, failures=list(prepared.failures))
    found = item_store.link_targets(conn, [i[1] for i in prepared.ids])
    blocked = _blocked(conn, ctx, found, {i[1] for i in prepared.ids if i[1] in found})
    doomed: list[str] = []
    for index, item_id, raw in prepared.ids:
        if item_id not in found:
            failure = ItemFailure("not_found", f"no item has id {item_id!r}", "id")
            outcome.failures.append((index, item_id, failure, raw))
        elif item_id in blocked:
            referrers = blocked[item_id]
            failure = ItemFailure(
                "in_use",
                f"{len(referrers)} item(s) link to item {item_id}, for example "
                f"{referrers[0]}; destroy or relink them first",
                "id",
            )
            outcome.failures.append((index, item_id, failure, raw))
        else:
            doomed.append(item_id)
            outcome.applied.append((index, item_id))
    item_store.delete_ids(conn, doomed)
    return outcome
