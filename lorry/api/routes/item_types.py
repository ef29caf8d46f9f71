from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from lorry.api.body import decode_body
from lorry.api.deps import RuntimeDep, require
from lorry.clock import to_iso
from lorry.errors import ApiError
from lorry.schema.fields import FieldDef, ItemTypeDef, check_api_key, check_fields
from lorry.schema.validator import ItemFailure, Validator
from lorry.store import item_types as type_store

router = APIRouter(tags=["item types"])


class _Attributes(msgspec.Struct, forbid_unknown_fields=True):
    api_key: str
    name: str
    fields: list[FieldDef] = msgspec.field(default_factory=list)


class _PatchAttributes(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    fields: list[FieldDef] | None = None


class _Data(msgspec.Struct):
    attributes: _Attributes
    type: str = "item_type"


class _PatchData(msgspec.Struct):
    attributes: _PatchAttributes
    type: str = "item_type"


class _Body(msgspec.Struct):
    data: _Data


class _PatchBody(msgspec.Struct):
    data: _PatchData


def resource(t: ItemTypeDef) -> dict[str, Any]:
    return {
        "id": t.id,
        "type": "item_type",
        "attributes": {
            "api_key": t.api_key,
            "name": t.name,
            "fields": msgspec.to_builtins(t.fields),
            "created_at": to_iso(t.created_at),
            "updated_at": to_iso(t.updated_at),
        },
    }


def _probe(api_key: str, fields: list[FieldDef]) -> Validator:
    return Validator(
        [
            ItemTypeDef(
                pk=0,
                id="",
                api_key=api_key,
                name="",
                fields=fields,
                created_at=0,
                updated_at=0,
            )
        ]
    )


def _check_defaults(api_key: str, fields: list[FieldDef]) -> None:
    """Compile the type, and prove each default valid for its field."""
    for i, f in enumerate(fields):
        if f.default is None:
            continue
        # A field alone: a default its type cannot hold fails to compile.
        try:
            result = _probe(api_key, [f]).convert({"item_type": api_key})
        except Exception as exc:
            result = ItemFailure("invalid_value", str(exc), f.api_key)
        if isinstance(result, ItemFailure):
            raise ApiError.invalid(
                f"field {f.api_key!r}: the default {f.default!r} is not valid "
                f"({result.message})",
                pointer=f"/data/attributes/fields/{i}/default",
                code="invalid_field",
            )
    try:
        _probe(api_key, fields)
    except Exception as exc:
        raise ApiError.invalid(
            f"the fields cannot be compiled into a validator: {exc}",
            pointer="/data/attributes/fields",
            code="invalid_field",
        ) from None


@router.post("/item-types", status_code=201, dependencies=[require("admin")])
async def create_item_type(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    body = await decode_body(request, _Body)
    attrs = body.data.attributes
    check_api_key(attrs.api_key, "/data/attributes/api_key")
    check_fields(attrs.fields, "/data/attributes/fields")

    def work() -> ItemTypeDef:
        # Compiling a large type takes time: off the event loop too.
        _check_defaults(attrs.api_key, attrs.fields)
        with runtime.db.write() as conn:
            return type_store.create(
                conn, runtime.db.dialect, attrs.api_key, attrs.name, attrs.fields
            )

    # Writes wait for the write lock: never on the event loop.
    return {"data": resource(await run_in_threadpool(work))}


@router.get("/item-types", dependencies=[require("reader")])
def list_item_types(runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.db.read() as conn:
        types = type_store.load_all(conn)
    return {"data": [resource(t) for t in types], "meta": {"total_count": len(types)}}


def _find(runtime: RuntimeDep, api_key: str) -> ItemTypeDef:
    with runtime.db.read() as conn:
        found = type_store.find(conn, api_key)
    if found is None:
        raise ApiError.not_found("item type", api_key)
    return found


@router.get("/item-types/{api_key}", dependencies=[require("reader")])
def show_item_type(api_key: str, runtime: RuntimeDep) -> dict[str, Any]:
    return {"data": resource(_find(runtime, api_key))}


@router.patch("/item-types/{api_key}", dependencies=[require("admin")])
async def update_item_type(
    api_key: str, request: Request, runtime: RuntimeDep
) -> dict[str, Any]:
    body = await decode_body(request, _PatchBody)
    attrs = body.data.attributes
    if attrs.fields is not None:
        check_fields(attrs.fields, "/data/attributes/fields")

    def work() -> ItemTypeDef:
        if attrs.fields is not None:
            _check_defaults(api_key, attrs.fields)
        with runtime.db.write() as conn:
            old = type_store.find(conn, api_key)
            if old is None:
                raise ApiError.not_found("item type", api_key)
            return type_store.update(
                conn, runtime.db.dialect, old, attrs.name, attrs.fields
            )

    return {"data": resource(await run_in_threadpool(work))}


@router.delete(
    "/item-types/{api_key}", status_code=204, dependencies=[require("admin")]
)
def delete_item_type(api_key: str, runtime: RuntimeDep) -> Response:
    with runtime.db.write() as conn:
        found = type_store.find(conn, api_key)
        if found is None:
            raise ApiError.not_found("item type", api_key)
        type_store.delete(conn, runtime.db.dialect, found)
    return Response(status_code=204)
