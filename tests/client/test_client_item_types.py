import json
from collections.abc import Callable
from typing import Any

import httpx

from lorry import Client
from lorry.client import ItemType

FIELDS: list[dict[str, Any]] = [
    {"api_key": "sku", "field_type": "string", "required": True, "unique": True},
    {"api_key": "price", "field_type": "float", "validators": {"range": {"min": 0}}},
]


def test_create__posts_jsonapi_body_with_bearer_token(
    client_for: Callable[..., tuple[Client, Any]],
    item_type: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(
        lambda request: httpx.Response(201, json={"data": item_type("product")})
    )

    created = client.item_types.create(api_key="product", name="Product", fields=FIELDS)

    request = recorder.last
    assert (request.method, request.url.path) == ("POST", "/item-types")
    assert request.headers["Authorization"] == "Bearer s3cret-token"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "data": {
            "type": "item_type",
            "attributes": {"api_key": "product", "name": "Product", "fields": FIELDS},
        }
    }
    assert isinstance(created, ItemType)
    assert created.id == "01TYPE"
    assert created.attributes.api_key == "product"
    assert created.attributes.fields[0]["api_key"] == "sku"


def test_list_and_find(
    client_for: Callable[..., tuple[Client, Any]],
    item_type: Callable[..., dict[str, Any]],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/item-types":
            body = {
                "data": [item_type("a"), item_type("b")],
                "meta": {"total_count": 2},
            }
            return httpx.Response(200, json=body)
        return httpx.Response(200, json={"data": item_type("a")})

    client, recorder = client_for(handler)

    listed = client.item_types.list()
    found = client.item_types.find("a")

    assert [t.attributes.api_key for t in listed] == ["a", "b"]
    assert listed.total_count == 2
    assert found.attributes.name == "A"
    assert [(r.method, r.url.path) for r in recorder.requests] == [
        ("GET", "/item-types"),
        ("GET", "/item-types/a"),
    ]


def test_update__sends_only_the_given_attributes(
    client_for: Callable[..., tuple[Client, Any]],
    item_type: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(
        lambda request: httpx.Response(200, json={"data": item_type()})
    )

    client.item_types.update("product", name="Goods")

    assert recorder.last.method == "PATCH"
    assert recorder.last.url.path == "/item-types/product"
    assert json.loads(recorder.last.content) == {
        "data": {"type": "item_type", "attributes": {"name": "Goods"}}
    }


def test_destroy__answers_none_on_204(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    client, recorder = client_for(lambda request: httpx.Response(204))

    client.item_types.destroy("product")

    assert (recorder.last.method, recorder.last.url.path) == (
        "DELETE",
        "/item-types/product",
    )


def test_path_segments_are_escaped(
    client_for: Callable[..., tuple[Client, Any]],
    item_type: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(
        lambda request: httpx.Response(200, json={"data": item_type()})
    )

    client.item_types.find("../jobs")

    assert recorder.last.url.raw_path == b"/item-types/..%2Fjobs"
