"""Migration jobs, a chunk at a time: read, map, validate, write, relink, delete.

A chunk's staged input is the ids of its source items. Everything else
happens in the chunk's write transaction, against the store as it is then:
the source items are read (a source changed since the job was accepted is
migrated as it is now), mapped (lorry.jobs.migration), validated against the
target type, and written as new items; each pair of ids is recorded in
``migrated_items``; links are rewired; with ``delete_source`` the sources
are deleted. A chunk that dies before its commit leaves none of it behind,
and runs again from the sources, which are still there.

Links follow the migrated items. With ``delete_source`` (a move), every link
in the store to a moved item is rewritten to its new item. Without it (a
copy), only the copies' links change: a copy's link to another item of the
selection points at that item's copy. Either way a link to an item of the
selection that is still to be migrated (a later chunk, or this one) counts
as a link to the item it will become, and is rewritten when that item is
migrated; a link to an item that fails to migrate keeps pointing at the
original.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.jobs import create
from lorry.jobs.context import ChunkOutcome, JobContext, Prepared, decoded_entries
from lorry.jobs.links import Candidate, resolve_links
from lorry.jobs.migration import decode_data, field_plan, links_to
from lorry.jobs.model import ChunkInput, decode_entries
from lorry.schema.validator import ItemFailure, LinkField
from lorry.store import item_types as type_store
from lorry.store import items as item_store
from lorry.store.tables import job_chunks, jobs, migrated_items

__all__ = ["SAMPLE_SIZE", "apply", "prepare"]

log = logging.getLogger(__name__)

#: Items a dry run shows in the job's details, as they would be written.
SAMPLE_SIZE = 5
_decode_id = msgspec.json.Decoder(str).decode
_encode = msgspec.json.Encoder().encode
_SELECTIONS: OrderedDict[str, dict[str, int]] = OrderedDict()
_SELECTIONS_LOCK = threading.Lock()


def prepare(ctx: JobContext, chunk: ChunkInput) -> Prepared:
    # The sources are read under the write lock, in apply: read here, they
    # could change before the chunk is written.
    prepared = Prepared(chunk.seq, [], [], first_index=chunk.first_index)
    for index, raw, source_id in decoded_entries(chunk, prepared, _decode_id, "an id"):
        prepared.ids.append((index, source_id, raw))
    return prepared


def _selection(conn: sa.Connection, job_id: str) -> dict[str, int]:
    """Every source id of a job, with its chunk; read once per process."""
    with _SELECTIONS_LOCK:
        found = _SELECTIONS.get(job_id)
        if found is not None:
            return found
    c = job_chunks.c
    selection: dict[str, int] = {}
    for seq, blob in conn.execute(sa.select(c.seq, c.input).where(c.job_id == job_id)):
        for entry in decode_entries(blob):
            if isinstance(entry, bytes):
                selection[_decode_id(entry)] = seq
    with _SELECTIONS_LOCK:
        _SELECTIONS[job_id] = selection
        while len(_SELECTIONS) > 4:
            _SELECTIONS.popitem(last=False)
    return selection


def _link_values(item: dict[str, Any], links: tuple[LinkField, ...]) -> set[str]:
    values: set[str] = set()
    for link in links:
        value = item.get(link.key)
        if isinstance(value, str):
            values.add(value)
        elif isinstance(value, list):
            values.update(v for v in value if isinstance(v, str))
    return values


def _rewrite(item: dict[str, Any], keys: list[str], new: dict[str, str]) -> bool:
    """Point an item's links (given as its values) at new ids; True if any."""
    changed = False
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and value in new:
            item[key] = new[value]
            changed = True
        elif isinstance(value, list) and any(v in new for v in value):
            item[key] = [new.get(v, v) if isinstance(v, str) else v for v in value]
            changed = True
    return changed


def _earlier_copies(conn: sa.Connection, job_id: str, ids: set[str]) -> dict[str, str]:
    """Items of the selection that earlier chunks migrated: source -> new id."""
    m = migrated_items.c
    found: dict[str, str] = {}
    wanted = sorted(ids)
    for start in range(0, len(wanted), 5000):
        query = sa.select(m.source_id, m.target_id).where(
            m.job_id == job_id, m.source_id.in_(wanted[start : start + 5000])
        )
        found.update((s, t) for s, t in conn.execute(query))
    return found


def _still_to_migrate(
    conn: sa.Connection, ctx: JobContext, values: set[str], source_pk: int
) -> dict[str, int]:
    """Linked items of the selection not migrated yet, as of the target type."""
    assert ctx.job_id is not None
    of_source = [
        i
        for i, pk in item_store.link_targets(conn, sorted(values)).items()
        if pk == source_pk
    ]
    if not of_source:
        return {}
    selection = _selection(conn, ctx.job_id)
    target_pk = ctx.pk_by_key[ctx.options["to"]]
    if ctx.options.get("dry_run"):
        # Earlier chunks of a dry run migrated nothing; it counts their
        # items as the real run would have left them: migrated.
        return {i: target_pk for i in of_source if i in selection}
    c = job_chunks.c
    undone = set(
        conn.execute(
            sa.select(c.seq).where(c.job_id == ctx.job_id, c.status != "done")
        ).scalars()
    )
    return {
        i: target_pk for i in of_source if i in selection and selection[i] in undone
    }


def apply(conn: sa.Connection, ctx: JobContext, prepared: Prepared) -> ChunkOutcome:
    assert ctx.job_id is not None
    options = ctx.options
    plan = field_plan(ctx.types, options)
    source_pk = ctx.pk_by_key[options["from"]]
    compiled = ctx.validator.by_key[plan.target]
    link_keys = [link.key for link in compiled.links]
    outcome = ChunkOutcome(prepared.seq, failures=list(prepared.failures))

    rows = item_store.rows_by_ids(conn, [i[1] for i in prepared.ids])
    mapped: list[tuple[int, str, dict[str, Any], int]] = []
    for index, source_id, raw in prepared.ids:
        row = rows.get(source_id)
        if row is None or row.item_type_pk != source_pk:
            failure = ItemFailure(
                "not_found", f"item {source_id} no longer exists", "id"
            )
            outcome.failures.append((index, source_id, failure, raw))
            continue
        item = plan.convert(decode_data(row.data))
        mapped.append((index, source_id, item, row.created_at))

    linked: set[str] = set()
    for _index, _id, item, _created in mapped:
        linked |= _link_values(item, compiled.links)
    if linked and not options.get("delete_source"):
        # A move rewired links to earlier chunks' items already; a copy
        # rewires only its copies, so its sources still name the originals.
        earlier = _earlier_copies(conn, ctx.job_id, linked)
        for _index, _id, item, _created in mapped:
            _rewrite(item, link_keys, earlier)
        linked = (linked - earlier.keys()) | set(earlier.values())
    pending = _still_to_migrate(conn, ctx, linked, source_pk) if linked else {}

    candidates: list[Candidate] = []
    source_of: dict[int, str] = {}
    for index, source_id, item, created_at in mapped:
        raw = _encode(item)
        result = ctx.validator.convert(item)
        if isinstance(result, ItemFailure):
            outcome.failures.append((index, source_id, result, raw))
            continue
        # The content keeps its creation time; its writing is now.
        result.created_at = created_at
        result.updated_at = ctx.now
        source_of[index] = source_id
        candidates.append((index, result, raw, None, None))

    ok, link_failures = resolve_links(conn, ctx, candidates, pending)
    made = create.insert(conn, ctx, ok, ChunkOutcome(prepared.seq))
    outcome.failures.extend(
        (index, source_of[index], failure, raw)
        for index, _id, failure, raw in link_failures + made.failures
    )
    outcome.applied = made.applied
    outcome.created = len(made.applied)
    moved = {source_of[index]: new_id for index, new_id in made.applied}
    if moved:
        conn.execute(
            sa.insert(migrated_items),
            [
                {"job_id": ctx.job_id, "source_id": s, "target_id": t}
                for s, t in moved.items()
            ],
        )
    relinked = _relink(conn, ctx, moved, everywhere=bool(options["delete_source"]))
    if options["delete_source"]:
        item_store.delete_ids(conn, list(moved))
    if options.get("dry_run"):
        outcome.notes = _dry_run_notes(conn, ctx, outcome, moved)
    log.info(
        "job %s chunk %d: %d items migrated, %d failed, %d links rewired",
        ctx.job_id,
        prepared.seq,
        len(moved),
        len(outcome.failures),
        relinked,
        extra={
            "action": "migrate_chunk",
            "job_id": ctx.job_id,
            "chunk": prepared.seq,
            "migrated": len(moved),
            "relinked": relinked,
        },
    )
    return outcome


def _relink(
    conn: sa.Connection, ctx: JobContext, moved: dict[str, str], *, everywhere: bool
) -> int:
    """Rewrite links to the migrated items; return how many items changed.

    A move rewrites them in every item; a copy only in its own copies, which
    are the items of the target type that this job created.
    """
    if not moved:
        return 0
    target_pk = ctx.pk_by_key[ctx.options["to"]]
    keys = {ctx.options["from"], ctx.options["to"]}
    fields = [f for f in links_to(ctx.types, keys) if everywhere or f[0] == target_pk]
    olds = sorted(moved)
    referrers: set[str] = set()
    for type_pk, key, many in fields:
        found = ctx.dialect.referrers(conn, type_pk, key, many, olds)
        referrers.update(referrer for _target, referrer in found)
    # Sources are deleted in a moment: rewriting their links is wasted work.
    referrers -= moved.keys()

    updates: list[dict[str, Any]] = []
    rows = item_store.rows_by_ids(conn, sorted(referrers))
    for row in rows.values():
        if not everywhere and row.created_by_job != ctx.job_id:
            continue
        type_def = ctx.type_by_pk[row.item_type_pk]
        keys_of_type = [
            f.api_key for f in type_def.fields if f.field_type in ("link", "links")
        ]
        data = decode_data(row.data)
        if _rewrite(data, keys_of_type, moved):
            updates.append(
                {
                    "b_id": row.id,
                    "b_data": _encode(data).decode(),
                    "b_version": row.version + 1,
                    "b_updated_at": ctx.now,
                    "b_job": ctx.job_id,
                }
            )
    if item_store.update_rows(conn, updates):
        # Ids swapped one for one cannot break a unique index; if they did,
        # deleting the sources would leave links to nothing.
        raise RuntimeError(f"job {ctx.job_id}: rewiring links broke a unique index")
    return len(updates)


def _dry_run_notes(
    conn: sa.Connection,
    ctx: JobContext,
    outcome: ChunkOutcome,
    moved: dict[str, str],
) -> dict[str, Any]:
    """The counts and the first items of a dry run, for the job's details.

    Read before the savepoint rolls the chunk back, so the sample shows the
    items as they would be written, links rewired.
    """
    assert ctx.job_id is not None
    details = ctx.scratch.get("details")
    if details is None:
        query = sa.select(jobs.c.details).where(jobs.c.id == ctx.job_id)
        details = ctx.scratch["details"] = conn.execute(query).scalar() or {}
    taken = len(details.get("sample", [])) + ctx.scratch.get("sampled", 0)
    wanted = list(moved.items())[: max(SAMPLE_SIZE - taken, 0)]
    ctx.scratch["sampled"] = ctx.scratch.get("sampled", 0) + len(wanted)
    found = item_store.rows_by_ids(conn, [new for _old, new in wanted])
    type_keys = type_store.type_keys(conn)
    sample = []
    for source_id, new_id in wanted:
        item = item_store.render(found[new_id], type_keys)
        # The id is the one this run drew; the real run draws another.
        item["id"] = None
        item["meta"] = {"source_id": source_id}
        sample.append(item)
    return {
        "would_create": len(outcome.applied),
        "would_fail": len(outcome.failures),
        "sample": sample,
    }
