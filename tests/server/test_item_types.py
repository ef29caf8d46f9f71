"""Item types: definitions, checks, and the unique indexes behind them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import bulk_create, item_type_body


def test_item_type_lifecycle(api: httpx.Client) -> None:
    body = item_type_body("page", [{"api_key": "slug", "field_type": "string"}])
    created = api.post("/item-types", json=body)
    assert created.status_code == 201
    assert created.json()["data"]["attributes"]["api_key"] == "page"
    assert api.post("/item-types", json=body).status_code == 409
    listed = api.get("/item-types").json()
    assert [t["attributes"]["api_key"] for t in listed["data"]] == ["page"]

    bulk_create(
        api, [{"item_type": "page", "slug": "a"}, {"item_type": "page", "slug": "a"}]
    )
    unique = {
        "data": {
            "attributes": {
                "fields": [{"api_key": "slug", "field_type": "string", "unique": True}]
            }
        }
    }
    refused = api.patch("/item-types/page", json=unique)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["code"] == "not_unique"

    assert api.delete("/item-types/page").status_code == 409
    ids = [i["id"] for i in api.get("/items").json()["data"]]
    api.post("/items/bulk-destroy-jobs", json={"items": ids[1:]})
    import time

    deadline = time.monotonic() + 10
    while api.get("/items").json()["meta"]["total_count"] > 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.patch("/item-types/page", json=unique).status_code == 200
    job = bulk_create(api, [{"item_type": "page", "slug": "a"}])
    assert job["attributes"]["result"]["errors"][0]["code"] == "not_unique"

    api.post("/items/bulk-destroy-jobs", json={"items": ids[:1]})
    deadline = time.monotonic() + 10
    while api.get("/items").json()["meta"]["total_count"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.delete("/item-types/page").status_code == 204
    assert api.get("/item-types/page").status_code == 404


@pytest.mark.parametrize(
    ("field", "pointer"),
    [
        ({"api_key": "id", "field_type": "string"}, "/0/api_key"),
        ({"api_key": "Bad Key", "field_type": "string"}, "/0/api_key"),
        ({"api_key": "x", "field_type": "money"}, "/0/field_type"),
        ({"api_key": "x", "field_type": "enum"}, "/0/validators/enum"),
        ({"api_key": "x", "field_type": "link"}, "/0/validators/item_types"),
        ({"api_key": "x", "field_type": "json", "unique": True}, "/0/unique"),
        (
            {"api_key": "x", "field_type": "string", "validators": {"pattern": "("}},
            "/0/validators/pattern",
        ),
        (
            {
                "api_key": "x",
                "field_type": "integer",
                "validators": {"range": {"min": 5, "max": 1}},
            },
            "/0/validators/range",
        ),
        ({"api_key": "x", "field_type": "integer", "default": "ten"}, "/0/default"),
        (
            {
                "api_key": "x",
                "field_type": "link",
                "validators": {"item_types": ["ghost"]},
            },
            "/0/validators/item_types",
        ),
    ],
)
def test_bad_field_definitions(
    api: httpx.Client, field: dict[str, Any], pointer: str
) -> None:
    response = api.post("/item-types", json=item_type_body("thing", [field]))
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["source"]["pointer"] == "/data/attributes/fields" + pointer
    assert api.get("/item-types").json()["meta"]["total_count"] == 0


def test_duplicate_field_keys(api: httpx.Client) -> None:
    fields = [{"api_key": "a", "field_type": "string"}] * 2
    response = api.post("/item-types", json=item_type_body("thing", fields))
    assert response.status_code == 422
    assert "duplicate" in response.json()["errors"][0]["detail"]
