"""Checking and resolving link fields against the store, a chunk at a time."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.jobs.context import JobContext
from lorry.schema.validator import ItemFailure, LinkField, Valid
from lorry.store import items as item_store

__all__ = ["Candidate", "link_values", "resolve_links"]

Candidate = tuple[int, Valid, bytes, str | None, frozenset[str] | None]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _coerce_lookup(value: Any, field_type: str) -> Any:
    if field_type == "integer":
        number = msgspec.convert(value, int, strict=False)
        if not -(2**63) <= number < 2**63:
            raise msgspec.ValidationError(f"{number} is not a 64-bit integer")
        return number
    if field_type == "float":
        return msgspec.convert(value, float, strict=False)
    return str(value)


def link_values(valid: Valid) -> set[Any]:
    """Every value the item's link fields hold."""
    obj = valid.materialize()
    return {
        v for link in valid.compiled.links for v in _as_list(getattr(obj, link.attr))
    }


def _applies(link: LinkField, given: frozenset[str] | None) -> bool:
    return given is None or link.key in given


def resolve_links(
    conn: sa.Connection,
    ctx: JobContext,
    candidates: list[Candidate],
    retyped: dict[str, int] | None = None,
) -> tuple[list[Candidate], list[tuple[int, str | None, ItemFailure, bytes]]]:
    """Return the candidates whose links hold, and a failure for each other.

    ``retyped`` gives items that count as being of another type than they
    are: a migration's items that are still to be migrated.
    """
    if not any(cand[1].compiled.links for cand in candidates):
        return candidates, []
    failed: dict[int, ItemFailure] = {}
    pk_by_key = ctx.pk_by_key
    by_ids: set[str] = set()
    lookups: dict[str, set[Any]] = {}
    for index, valid, _raw, _id, given in candidates:
        for link in valid.compiled.links:
            values = _as_list(getattr(valid.materialize(), link.attr))
            if not values:
                continue
            if link.by is None or not _applies(link, given):
                by_ids.update(values)
                continue
            target = ctx.type_by_pk[pk_by_key[next(iter(link.target_keys))]]
            target_field = target.field(link.by)
            assert target_field is not None  # checked when the job was accepted
            try:
                coerced = [_coerce_lookup(v, target_field.field_type) for v in values]
            except msgspec.ValidationError:
                failed[index] = ItemFailure(
                    "link_not_found",
                    f"{link.key}: {values!r} is not a valid {link.by}",
                    link.key,
                )
                continue
            lookups.setdefault(link.key, set()).update(coerced)

    targets = item_store.link_targets(conn, sorted(by_ids)) if by_ids else {}
    if retyped:
        targets.update({k: v for k, v in retyped.items() if k in targets})
    # An item may link to one that comes with it in the same chunk, giving
    # its id (an export read back: linked items come first, often in the
    # same chunk). The caller drops the linker if that one is not written.
    own: set[str] = set()
    for cand in candidates:
        if cand[3] is not None and cand[3] in by_ids and cand[3] not in targets:
            targets[cand[3]] = cand[1].compiled.type_def.pk
            own.add(cand[3])
    resolved: dict[str, dict[Any, str]] = {}
    for key, wanted in lookups.items():
        link = _link_named(candidates, key)
        target_pk = pk_by_key[next(iter(link.target_keys))]
        assert link.by is not None
        resolved[key] = item_store.lookup_by_field(
            conn, ctx.dialect, target_pk, link.by, sorted(wanted, key=repr)
        )

    ok: list[Candidate] = []
    for cand in candidates:
        index, valid, _raw, _id, given = cand
        problem = failed.get(index) or _check(valid, given, targets, resolved, ctx)
        if problem is None:
            ok.append(cand)
        else:
            failed[index] = problem
    ok = _without_links_to_failed(ok, candidates, failed, own)
    failures = [(c[0], c[3], failed[c[0]], c[2]) for c in candidates if c[0] in failed]
    return ok, failures


def _without_links_to_failed(
    ok: list[Candidate],
    candidates: list[Candidate],
    failed: dict[int, ItemFailure],
    own: set[str],
) -> list[Candidate]:
    """Fail the items that link to an item of the chunk that failed itself,
    and then those that link to them, and so on."""
    lost = {c[3] for c in candidates if c[0] in failed and c[3] in own}
    while lost and ok:
        keep: list[Candidate] = []
        newly: set[str] = set()
        for cand in ok:
            if cand[1].compiled.links and not lost.isdisjoint(link_values(cand[1])):
                failed[cand[0]] = ItemFailure(
                    "link_not_found",
                    "links to an item given with it that failed: "
                    f"{sorted(lost & link_values(cand[1]))[0]}",
                )
                if cand[3] is not None:
                    newly.add(cand[3])
            else:
                keep.append(cand)
        ok, lost = keep, newly
    return ok


def _link_named(candidates: list[Candidate], key: str) -> LinkField:
    for cand in candidates:
        for link in cand[1].compiled.links:
            if link.key == key:
                return link
    raise KeyError(key)


def _check(
    valid: Valid,
    given: frozenset[str] | None,
    targets: dict[str, int],
    resolved: dict[str, dict[Any, str]],
    ctx: JobContext,
) -> ItemFailure | None:
    pk_by_key = ctx.pk_by_key
    for link in valid.compiled.links:
        values = _as_list(getattr(valid.materialize(), link.attr))
        if not values:
            continue
        if link.by is not None and _applies(link, given):
            target_field = ctx.type_by_pk[
                pk_by_key[next(iter(link.target_keys))]
            ].field(link.by)
            assert target_field is not None
            table = resolved.get(link.key, {})
            ids = []
            for v in values:
                try:
                    found = table.get(_coerce_lookup(v, target_field.field_type))
                except msgspec.ValidationError:
                    found = None
                if found is None:
                    return ItemFailure(
                        "link_not_found",
                        f"{link.key}: no {next(iter(link.target_keys))} has "
                        f"{link.by} {v!r}",
                        link.key,
                    )
                ids.append(found)
            setattr(valid.materialize(), link.attr, ids if link.many else ids[0])
            continue
        allowed = {pk_by_key[k] for k in link.target_keys if k in pk_by_key}
        for v in values:
            type_pk = targets.get(v)
            if type_pk is None:
                return ItemFailure(
                    "link_not_found", f"{link.key}: no item has id {v!r}", link.key
                )
            if type_pk not in allowed:
                kinds = ", ".join(sorted(link.target_keys))
                return ItemFailure(
                    "link_wrong_type",
                    f"{link.key}: item {v} is not of type {kinds}",
                    link.key,
                )
    return None
