"""The item type repository, and the unique indexes that follow its fields."""

from __future__ import annotations

import logging

import msgspec
import sqlalchemy as sa

from lorry.clock import now_us
from lorry.errors import ApiError
from lorry.ids import new_id
from lorry.schema.fields import FieldDef, ItemTypeDef
from lorry.store import items as item_store
from lorry.store.dialect import Dialect
from lorry.store.tables import item_types, items

__all__ = [
    "count_items",
    "create",
    "delete",
    "find",
    "load_all",
    "type_keys",
    "update",
]

log = logging.getLogger(__name__)


def _from_row(row: sa.Row[tuple[object, ...]]) -> ItemTypeDef:
    fields = msgspec.convert(row.fields, list[FieldDef])
    return ItemTypeDef(
        pk=row.pk,
        id=row.id,
        api_key=row.api_key,
        name=row.name,
        fields=fields,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def load_all(conn: sa.Connection) -> list[ItemTypeDef]:
    rows = conn.execute(sa.select(item_types).order_by(item_types.c.pk))
    return [_from_row(r) for r in rows]


def find(conn: sa.Connection, api_key: str) -> ItemTypeDef | None:
    row = conn.execute(
        sa.select(item_types).where(item_types.c.api_key == api_key)
    ).first()
    return _from_row(row) if row is not None else None


def _check_link_targets(conn: sa.Connection, fields: list[FieldDef], own: str) -> None:
    known = {r[0] for r in conn.execute(sa.select(item_types.c.api_key))} | {own}
    for i, f in enumerate(fields):
        for target in f.validators.item_types or ():
            if target not in known:
                raise ApiError.invalid(
                    f"field {f.api_key!r} links to unknown item type {target!r}",
                    pointer=f"/data/attributes/fields/{i}/validators/item_types",
                    code="invalid_field",
                )


def _indexed(fields: list[FieldDef]) -> set[tuple[str, bool]]:
    """(field, unique) of each index a type's fields need.

    Unique fields get unique indexes. Single links get plain ones, because
    destroying an item asks which items link to it; a unique index serves
    that too.
    """
    out = {(f.api_key, True) for f in fields if f.unique}
    out |= {
        (f.api_key, False) for f in fields if f.field_type == "link" and not f.unique
    }
    return out


def _sync_indexes(
    conn: sa.Connection,
    dialect: Dialect,
    type_def: ItemTypeDef,
    old: list[FieldDef],
    new: list[FieldDef],
) -> None:
    before, after = _indexed(old), _indexed(new)
    for key, unique in before - after:
        dialect.drop_field_index(conn, type_def.pk, key, unique)
    for key, unique in sorted(after - before):
        if unique:
            _make_unique(conn, dialect, type_def, key)
        else:
            dialect.create_field_index(conn, type_def.pk, key, False)


def _make_unique(
    conn: sa.Connection, dialect: Dialect, type_def: ItemTypeDef, key: str
) -> None:
    try:
        with conn.begin_nested():
            dialect.create_field_index(conn, type_def.pk, key, True)
    except sa.exc.IntegrityError:
        raise ApiError.one(
            409,
            "not_unique",
            f"field {key!r} cannot be made unique: stored items of "
            f"{type_def.api_key!r} share values",
        ) from None


def create(
    conn: sa.Connection,
    dialect: Dialect,
    api_key: str,
    name: str,
    fields: list[FieldDef],
) -> ItemTypeDef:
    if find(conn, api_key) is not None:
        raise ApiError.one(
            409,
            "duplicate_api_key",
            f"an item type {api_key!r} exists already",
            pointer="/data/attributes/api_key",
        )
    _check_link_targets(conn, fields, api_key)
    now = now_us()
    type_id = new_id()
    pk = conn.execute(
        sa.insert(item_types)
        .values(
            id=type_id,
            api_key=api_key,
            name=name,
            fields=msgspec.to_builtins(fields),
            created_at=now,
            updated_at=now,
        )
        .returning(item_types.c.pk)
    ).scalar_one()
    type_def = ItemTypeDef(
        pk=pk,
        id=type_id,
        api_key=api_key,
        name=name,
        fields=fields,
        created_at=now,
        updated_at=now,
    )
    _sync_indexes(conn, dialect, type_def, [], fields)
    log.info("item type %s created", api_key, extra={"action": "item_type_created"})
    return type_def


def update(
    conn: sa.Connection,
    dialect: Dialect,
    old: ItemTypeDef,
    name: str | None,
    fields: list[FieldDef] | None,
) -> ItemTypeDef:
    new_fields = fields if fields is not None else old.fields
    _check_link_targets(conn, new_fields, old.api_key)
    now = now_us()
    conn.execute(
        sa.update(item_types)
        .where(item_types.c.pk == old.pk)
        .values(
            name=name if name is not None else old.name,
            fields=msgspec.to_builtins(new_fields),
            updated_at=now,
        )
    )
    new = msgspec.structs.replace(
        old,
        name=name if name is not None else old.name,
        fields=new_fields,
        updated_at=now,
    )
    _sync_indexes(conn, dialect, new, old.fields, new_fields)
    return new


def count_items(conn: sa.Connection, type_pk: int) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(items)
            .where(item_store.of_types([type_pk]))
        ).scalar_one()
    )


def delete(conn: sa.Connection, dialect: Dialect, type_def: ItemTypeDef) -> None:
    if count_items(conn, type_def.pk):
        raise ApiError.one(
            409,
            "item_type_in_use",
            f"item type {type_def.api_key!r} still has items; destroy them first",
        )
    users = [
        t.api_key
        for t in load_all(conn)
        if t.pk != type_def.pk
        and any(type_def.api_key in (f.validators.item_types or ()) for f in t.fields)
    ]
    if users:
        raise ApiError.one(
            409,
            "item_type_in_use",
            f"item type {type_def.api_key!r} is a link target of {', '.join(users)}; "
            "change those fields first",
        )
    _sync_indexes(conn, dialect, type_def, type_def.fields, [])
    conn.execute(sa.delete(item_types).where(item_types.c.pk == type_def.pk))


def type_keys(conn: sa.Connection) -> dict[int, str]:
    rows = conn.execute(sa.select(item_types.c.pk, item_types.c.api_key))
    return {pk: key for pk, key in rows}
