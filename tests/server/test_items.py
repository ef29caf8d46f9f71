"""Single items and listing with filters, over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import bulk_create


@pytest.fixture
def catalogue(api: httpx.Client, product_type: Any) -> list[dict[str, Any]]:
    items = [
        {
            "item_type": "product",
            "name": f"Item {i}",
            "sku": f"K{i:02d}",
            "price": i * 1.5,
            "stock": i,
            "active": i % 2 == 0,
            "released": f"2020-01-{i + 1:02d}",
            "seen_at": f"2021-06-01T{i:02d}:00:00+02:00",
            "code": "Alpha" if i < 5 else "Beta",
            "created_at": f"2019-12-{i + 1:02d}T00:00:00Z",
        }
        for i in range(10)
    ]
    items[3].pop("code")
    job = bulk_create(api, items)
    data: list[dict[str, Any]] = job["attributes"]["result"]["data"]
    return data


def _skus(api: httpx.Client, **params: Any) -> list[str]:
    response = api.get("/items", params={"filter[type]": "product", **params})
    assert response.status_code == 200, response.text
    return [i["sku"] for i in response.json()["data"]]


def test_single_item_crud(api: httpx.Client, product_type: Any) -> None:
    created = api.post(
        "/items",
        json={"data": {"item_type": "product", "name": "One", "sku": "ONE"}},
    )
    assert created.status_code == 201, created.text
    item = created.json()["data"]
    assert item["status"] == "draft"  # the field's default
    assert item["meta"]["version"] == 1

    patched = api.patch(
        f"/items/{item['id']}", json={"data": {"price": "2.5", "meta": {"version": 1}}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["price"] == 2.5
    assert patched.json()["data"]["meta"]["version"] == 2

    stale = api.patch(
        f"/items/{item['id']}", json={"data": {"price": 3, "meta": {"version": 1}}}
    )
    assert stale.status_code == 409
    assert stale.json()["errors"][0]["code"] == "stale_version"
    assert api.get(f"/items/{item['id']}").json()["data"]["price"] == 2.5

    dup = api.post(
        "/items", json={"data": {"item_type": "product", "name": "x", "sku": "ONE"}}
    )
    assert dup.status_code == 409
    bad = api.post("/items", json={"data": {"item_type": "product", "name": "x"}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["source"]["pointer"] == "/data/sku"

    assert api.delete(f"/items/{item['id']}").status_code == 204
    assert api.get(f"/items/{item['id']}").status_code == 404
    assert api.delete(f"/items/{item['id']}").status_code == 404


def test_filters(api: httpx.Client, catalogue: Any) -> None:
    f = "filter[fields]"
    assert _skus(api, **{f"{f}[stock][gte]": 8}) == ["K08", "K09"]
    assert _skus(api, **{f"{f}[stock][lt]": "2"}) == ["K00", "K01"]
    assert _skus(api, **{f"{f}[price][gt]": 12}) == ["K09"]
    assert _skus(api, **{f"{f}[price][lte]": 1.5}) == ["K00", "K01"]
    assert _skus(api, **{f"{f}[sku][eq]": "K04"}) == ["K04"]
    assert len(_skus(api, **{f"{f}[sku][neq]": "K04"})) == 9
    assert _skus(api, **{f"{f}[sku][in]": "K01,K03"}) == ["K01", "K03"]
    assert len(_skus(api, **{f"{f}[sku][not_in]": '["K01","K03"]'})) == 8
    assert _skus(api, **{f"{f}[code][exists]": "false"}) == ["K03"]
    assert len(_skus(api, **{f"{f}[code][exists]": "true"})) == 9
    assert _skus(api, **{f"{f}[name][matches]": "^Item [12]$"}) == ["K01", "K02"]
    assert len(_skus(api, **{f"{f}[active][eq]": "true"})) == 5
    assert _skus(api, **{f"{f}[released][gte]": "2020-01-09"}) == ["K08", "K09"]
    # 2021-06-01T09:00+02:00 is 07:00 UTC.
    assert _skus(api, **{f"{f}[seen_at][eq]": "2021-06-01T07:00:00Z"}) == ["K09"]
    assert _skus(api, **{f"{f}[created_at][lt]": "2019-12-03"}) == ["K00", "K01"]
    assert _skus(api, order_by="-price", **{"page[limit]": 3}) == ["K09", "K08", "K07"]
    assert _skus(api, order_by="code,-stock", **{"page[limit]": 3}) == [
        "K03",
        "K04",
        "K02",
    ]


def test_listing_pages(api: httpx.Client, catalogue: Any) -> None:
    page = api.get(
        "/items",
        params={"filter[type]": "product", "page[limit]": 4, "page[offset]": 8},
    ).json()
    assert page["meta"]["total_count"] == 10
    assert [i["sku"] for i in page["data"]] == ["K08", "K09"]
    assert page["links"]["next"] is None
    first = api.get("/items", params={"page[limit]": 4}).json()
    assert "page%5Boffset%5D=4" in first["links"]["next"]
    ids = [catalogue[0]["id"], catalogue[5]["id"]]
    by_ids = api.get("/items", params={"filter[ids]": ",".join(ids)}).json()
    assert sorted(i["id"] for i in by_ids["data"]) == sorted(ids)


@pytest.mark.parametrize(
    "params",
    [
        {"page[limit]": "501"},
        {"page[limit]": "x"},
        {"page[offset]": "-1"},
        {"filter[type]": "product", "filter[fields][nope][eq]": "1"},
        {"filter[type]": "product", "filter[fields][stock][like]": "1"},
        {"filter[type]": "product", "filter[fields][stock][gt]": "many"},
        {
            "filter[type]": "product",
            "filter[fields][name'); DROP TABLE items;--][eq]": "1",
        },
        {"filter[type]": "product", "filter[fields][name][matches]": "("},
        {"filter[type]": "product", "filter[fields][stock][matches]": "^1"},
        {"filter[fields][stock][eq]": "1"},
        {"filter[type]": "ghost"},
        {"filter[type]": "product", "order_by": "extra"},
        {"filter[bogus]": "1"},
    ],
)
def test_bad_list_requests(
    api: httpx.Client, catalogue: Any, params: dict[str, str]
) -> None:
    response = api.get("/items", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] in {
        "invalid_parameter",
        "invalid_filter",
        "invalid_order",
    }
    assert api.get("/items").json()["meta"]["total_count"] == 10


def test_tokens_required(server: Any) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        for path in ("/items", "/jobs", "/item-types"):
            response = anonymous.get(path)
            assert response.status_code == 401
            assert response.json()["errors"][0]["code"] == "not_authenticated"
        wrong = anonymous.get("/items", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert anonymous.get("/no-such-route").status_code == 404


def test_an_unexpected_error_is_a_json_500_on_a_live_connection(
    api: httpx.Client, product_type: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lorry.api.routes import items as items_route

    def broken(*_args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(items_route, "_render_one", broken)
    created = api.post(
        "/items", json={"data": {"item_type": "product", "name": "n", "sku": "Z"}}
    )
    assert created.status_code == 500
    assert created.json()["errors"][0]["code"] == "internal_error"
    assert "boom" not in created.text
    # The same keep-alive connection still works.
    assert api.get("/item-types").status_code == 200
