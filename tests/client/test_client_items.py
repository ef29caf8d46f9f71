import json
from collections.abc import Callable
from typing import Any

import httpx

from lorry import Client


def _item(item_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": item_id, "item_type": "product", **fields, "meta": {"version": 1}}


def test_create_find_update_destroy(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(204)
        status = 201 if request.method == "POST" else 200
        return httpx.Response(status, json={"data": _item("01A", sku="A", price=3)})

    client, recorder = client_for(handler)

    created = client.items.create({"item_type": "product", "sku": "A"})
    found = client.items.find("01A")
    updated = client.items.update("01A", {"price": 3}, version=1)
    client.items.destroy("01A")

    assert created == found == updated == _item("01A", sku="A", price=3)
    methods = [(r.method, r.url.path) for r in recorder.requests]
    assert methods == [
        ("POST", "/items"),
        ("GET", "/items/01A"),
        ("PATCH", "/items/01A"),
        ("DELETE", "/items/01A"),
    ]
    assert json.loads(recorder.requests[0].content) == {
        "data": {"item_type": "product", "sku": "A"}
    }
    assert json.loads(recorder.requests[2].content) == {
        "data": {"price": 3, "meta": {"version": 1}}
    }


def test_update_without_version_sends_no_meta(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    client, recorder = client_for(
        lambda request: httpx.Response(200, json={"data": _item("01A")})
    )

    client.items.update("01A", {"price": 4})

    assert json.loads(recorder.last.content) == {"data": {"price": 4}}


def test_list__encodes_filter_order_and_page_as_bracketed_params(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    body = {
        "data": [_item("01A"), _item("01B")],
        "meta": {"total_count": 7},
        "links": {"next": "/items?page%5Blimit%5D=2&page%5Boffset%5D=6"},
    }
    client, recorder = client_for(lambda request: httpx.Response(200, json=body))

    page = client.items.list(
        filter={
            "type": "product",
            "fields": {
                "created_at": {"lt": "2020-01-01"},
                "price": {"in": [1, 2]},
                "name": {"in": ["a,b", "c"]},
                "sku": {"exists": True},
            },
        },
        order_by="-price",
        page={"limit": 2, "offset": 4},
    )

    assert recorder.last.url.path == "/items"
    assert recorder.last.url.params.multi_items() == [
        ("filter[type]", "product"),
        ("filter[fields][created_at][lt]", "2020-01-01"),
        ("filter[fields][price][in]", "1,2"),
        ("filter[fields][name][in]", '["a,b","c"]'),
        ("filter[fields][sku][exists]", "true"),
        ("order_by", "-price"),
        ("page[limit]", "2"),
        ("page[offset]", "4"),
    ]
    assert [item["id"] for item in page] == ["01A", "01B"]
    assert page.total_count == 7
    assert page.next_offset == 6


def test_list__last_page_has_no_next_offset(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    body = {"data": [_item("01A")], "meta": {"total_count": 1}, "links": {"next": None}}
    client, _ = client_for(lambda request: httpx.Response(200, json=body))

    page = client.items.list(filter={"type": "product"})

    assert page.next_offset is None
    assert len(page) == 1


def test_iter__follows_pages_until_next_is_null(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    items = [_item(f"01{n:03d}") for n in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["page[limit]"])
        offset = int(request.url.params["page[offset]"])
        end = offset + limit
        next_url = None
        if end < len(items):
            next_url = f"/items?page%5Blimit%5D={limit}&page%5Boffset%5D={end}"
        body = {
            "data": items[offset:end],
            "meta": {"total_count": len(items)},
            "links": {"next": next_url},
        }
        return httpx.Response(200, json=body)

    client, recorder = client_for(handler)

    seen = list(client.items.iter(filter={"type": "product"}, page_size=2))

    assert seen == items
    assert [r.url.params["page[offset]"] for r in recorder.requests] == ["0", "2", "4"]
    assert {r.url.params["filter[type]"] for r in recorder.requests} == {"product"}


def test_iter__stops_when_the_next_offset_does_not_move_forward(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    body = {
        "data": [_item("01A")],
        "links": {"next": "/items?page%5Boffset%5D=0"},
    }
    client, recorder = client_for(lambda request: httpx.Response(200, json=body))

    assert [item["id"] for item in client.items.iter()] == ["01A"]
    assert len(recorder.requests) == 1
