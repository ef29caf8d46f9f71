"""Migration jobs, at accept: the options checked, the field plan, the selection.

A migration reads the items of one type (``from``) and writes each as an item
of another (``to``). Each source field goes to the target field that
``mapping`` names, or nowhere when mapped to null; a field that ``mapping``
leaves out goes to the target field of the same api_key, if there is one, and
nowhere otherwise. ``constants`` then set target fields to one value for
every item. All of that is known before the first item is read, so a request
that could only fail (a field that does not exist, a constant of the wrong
type, a required field that nothing fills) is refused at once.
"""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from lorry.errors import ApiError, ErrorItem
from lorry.schema.fields import FieldDef, ItemTypeDef
from lorry.schema.validator import ItemFailure, Validator
from lorry.store import item_types as type_store
from lorry.store import items as item_store
from lorry.store.dialect import Dialect
from lorry.store.selection import select_items
from lorry.store.tables import items

__all__ = [
    "FieldPlan",
    "check_migration",
    "decode_data",
    "field_plan",
    "links_to",
    "selected_ids",
]

#: Ids a migration's filter may list (filter[ids]).
MAX_FILTER_IDS = 5000
_LINKS = ("link", "links")
_ALLOWED = frozenset(
    {"from", "to", "filter", "mapping", "constants", "delete_source", "dry_run"}
    | {"chunk_size"}
)
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class _MigrateOptions(msgspec.Struct, forbid_unknown_fields=True):
    from_: str = msgspec.field(name="from")
    to: str
    filter: dict[str, Any] | None = None
    mapping: dict[str, str | None] | None = None
    constants: dict[str, Any] | None = None
    delete_source: bool = False
    dry_run: bool = False
    chunk_size: int | None = None


def _bad(detail: str, pointer: str, code: str = "invalid_option") -> ApiError:
    return ApiError(422, [ErrorItem.make(422, code, detail, pointer=pointer)])


def links_to(types: list[ItemTypeDef], keys: set[str]) -> list[tuple[int, str, bool]]:
    """(type, field, many) of every link field that may point at these types."""
    return [
        (t.pk, f.api_key, f.field_type == "links")
        for t in types
        for f in t.fields
        if f.field_type in _LINKS and keys & set(f.validators.item_types or ())
    ]


class FieldPlan:
    """Where each field of a source item goes in its target item."""

    def __init__(
        self,
        source: ItemTypeDef,
        target: ItemTypeDef,
        mapping: dict[str, str | None],
        constants: dict[str, Any],
    ) -> None:
        self.target = target.api_key
        self.constants = constants
        #: source field -> target field, or None where the field is dropped
        self.fields: dict[str, str | None] = {}
        for f in source.fields:
            if f.api_key in mapping:
                self.fields[f.api_key] = mapping[f.api_key] or None
            elif target.field(f.api_key) is not None:
                self.fields[f.api_key] = f.api_key
            else:
                self.fields[f.api_key] = None
        self._moves = [(s, t) for s, t in self.fields.items() if t is not None]

    def convert(self, data: dict[str, Any]) -> dict[str, Any]:
        """A source item's stored values as the target item's input."""
        out: dict[str, Any] = {"item_type": self.target}
        for source_key, target_key in self._moves:
            value = data.get(source_key)
            # An empty source field is left out, so that the target field's
            # default applies, as it would for an item created without it.
            if value is not None:
                out[target_key] = value
        out.update(self.constants)
        return out


def check_migration(conn: sa.Connection, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate a migration's options; return them normalised."""
    for key in raw:
        if key not in _ALLOWED:
            allowed = ", ".join(sorted(_ALLOWED))
            raise _bad(
                f"unknown option {key!r} for a migration; allowed: {allowed}",
                f"/{key}",
            )
    try:
        opts = msgspec.convert(raw, _MigrateOptions)
    except msgspec.ValidationError as exc:
        text, _sep, where = str(exc).partition(" - at `$")
        pointer = "/" + where.rstrip("`").lstrip(".").replace(".", "/")
        raise _bad(text, pointer if where else "/") from None
    types = {t.api_key: t for t in type_store.load_all(conn)}
    source = types.get(opts.from_)
    if source is None:
        raise _bad(f"from: no item type {opts.from_!r}", "/from", "unknown_item_type")
    target = types.get(opts.to)
    if target is None:
        raise _bad(f"to: no item type {opts.to!r}", "/to", "unknown_item_type")
    if source.pk == target.pk:
        raise _bad("from and to must be two different item types", "/to")
    if opts.chunk_size is not None and not 1 <= opts.chunk_size <= 50_000:
        raise _bad("chunk_size must be between 1 and 50000", "/chunk_size")
    mapping = dict(opts.mapping or {})
    constants = dict(opts.constants or {})
    _check_mapping(source, target, mapping, constants)
    _check_constants(conn, list(types.values()), target, constants)
    plan = FieldPlan(source, target, mapping, constants)
    _check_required(target, plan)
    if opts.delete_source:
        _check_moved_links(list(types.values()), source, target)
    if opts.filter is not None and "type" in opts.filter:
        if opts.filter["type"] not in (opts.from_, [opts.from_]):
            raise _bad(
                f"filter: a migration reads items of {opts.from_!r} (from) only",
                "/filter/type",
            )

    out: dict[str, Any] = {
        "from": opts.from_,
        "to": opts.to,
        "mapping": mapping,
        "constants": constants,
        "delete_source": opts.delete_source,
    }
    if opts.filter:
        out["filter"] = opts.filter
    if opts.dry_run:
        out["dry_run"] = True
    if opts.chunk_size is not None:
        out["chunk_size"] = opts.chunk_size
    return out


def _check_mapping(
    source: ItemTypeDef,
    target: ItemTypeDef,
    mapping: dict[str, str | None],
    constants: dict[str, Any],
) -> None:
    fed: dict[str, str] = {}
    for key, to_key in mapping.items():
        pointer = f"/mapping/{key}"
        if source.field(key) is None:
            raise _bad(
                f"mapping: {source.api_key!r} has no field {key!r}",
                pointer,
                "unknown_field",
            )
        if not to_key:
            continue
        if target.field(to_key) is None:
            raise _bad(
                f"mapping: {target.api_key!r} has no field {to_key!r}",
                pointer,
                "unknown_field",
            )
        if to_key in fed:
            raise _bad(
                f"mapping: {fed[to_key]!r} and {key!r} both go to {to_key!r}",
                pointer,
            )
        if to_key in constants:
            raise _bad(
                f"mapping: {to_key!r} is also set by constants; keep one",
                pointer,
            )
        fed[to_key] = key
    # A field the mapping leaves alone goes to the target field of its name:
    # that one must not be fed by the mapping too.
    for f in source.fields:
        key = f.api_key
        if key not in mapping and key in fed and target.field(key) is not None:
            raise _bad(
                f"mapping: {fed[key]!r} goes to {key!r}, and so does the source's "
                f'own {key!r}; drop that one ("{key}": null) or map it elsewhere',
                f"/mapping/{fed[key]}",
            )


def _check_constants(
    conn: sa.Connection,
    types: list[ItemTypeDef],
    target: ItemTypeDef,
    constants: dict[str, Any],
) -> None:
    fields: list[FieldDef] = []
    for key in constants:
        f = target.field(key)
        if f is None:
            raise _bad(
                f"constants: {target.api_key!r} has no field {key!r}",
                f"/constants/{key}",
                "unknown_field",
            )
        if f.unique:
            raise _bad(
                f"constants: {key!r} is unique; one value cannot go to every item",
                f"/constants/{key}",
            )
        # Checked alone: the constants are not a whole item.
        fields.append(msgspec.structs.replace(f, required=False))
    if not fields:
        return
    alone = msgspec.structs.replace(target, fields=fields)
    result = Validator([alone]).convert({"item_type": target.api_key, **constants})
    if isinstance(result, ItemFailure):
        key = result.field or next(iter(constants))
        raise _bad(f"constants: {result.message}", f"/constants/{key}", "invalid_value")
    _check_constant_links(conn, types, target, constants)


def _check_constant_links(
    conn: sa.Connection,
    types: list[ItemTypeDef],
    target: ItemTypeDef,
    constants: dict[str, Any],
) -> None:
    by_pk = {t.pk: t.api_key for t in types}
    for key, value in constants.items():
        f = target.field(key)
        if f is None or f.field_type not in _LINKS or value is None:
            continue
        ids = value if isinstance(value, list) else [value]
        found = item_store.link_targets(conn, [str(i) for i in ids])
        allowed = set(f.validators.item_types or ())
        for item_id in ids:
            if by_pk.get(found.get(str(item_id), -1)) not in allowed:
                raise _bad(
                    f"constants: {key}: no {' or '.join(sorted(allowed))} item "
                    f"has id {item_id!r}",
                    f"/constants/{key}",
                    "link_not_found",
                )


def _check_required(target: ItemTypeDef, plan: FieldPlan) -> None:
    fed = {t for t in plan.fields.values() if t} | set(plan.constants)
    for f in target.fields:
        if f.required and f.default is None and f.api_key not in fed:
            raise _bad(
                f"{target.api_key!r} requires {f.api_key!r}, and no field maps "
                "to it and no constant sets it",
                "/mapping",
                "unfilled_field",
            )


def _check_moved_links(
    types: list[ItemTypeDef], source: ItemTypeDef, target: ItemTypeDef
) -> None:
    """A move sends every link to a moved item to its new item: each field that
    holds such links must accept the target type."""
    for t in types:
        if t.pk == source.pk:
            continue
        for f in t.fields:
            allowed = f.validators.item_types or []
            if f.field_type in _LINKS and source.api_key in allowed:
                if target.api_key not in allowed:
                    raise _bad(
                        f"delete_source: {t.api_key}.{f.api_key} links to "
                        f"{source.api_key!r} items but not to {target.api_key!r} "
                        f"ones; add {target.api_key!r} to its item_types, so that "
                        "its links can follow the moved items",
                        "/delete_source",
                        "link_field_blocks_move",
                    )


def selected_ids(
    conn: sa.Connection, dialect: Dialect, options: dict[str, Any]
) -> list[str]:
    """The ids of the items a migration will read, in creation order.

    Read in one transaction, a snapshot: items created later are not
    selected, and each selected item is staged once.
    """
    filters = {**(options.get("filter") or {}), "type": options["from"]}
    chosen = select_items(conn, dialect, filters, max_ids=MAX_FILTER_IDS)
    query = sa.select(items.c.id).where(*chosen.where).order_by(items.c.pk)
    return list(conn.execute(query).scalars())


def field_plan(types: list[ItemTypeDef], options: dict[str, Any]) -> FieldPlan:
    by_key = {t.api_key: t for t in types}
    return FieldPlan(
        by_key[options["from"]],
        by_key[options["to"]],
        options.get("mapping") or {},
        options.get("constants") or {},
    )


def decode_data(data: str) -> dict[str, Any]:
    return _decode(data)
