"""Input that once broke the server: each must fail alone, clearly, and safely."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import bulk_create, item_type_body, wait_job


@pytest.fixture
def stock(api: httpx.Client) -> None:
    fields = [
        {
            "api_key": "qty",
            "field_type": "integer",
            "validators": {"range": {"min": 0}},
        },
        {"api_key": "big", "field_type": "integer", "unique": True},
        {"api_key": "at", "field_type": "datetime"},
        {"api_key": "name", "field_type": "string", "unique": True},
        {
            "api_key": "code",
            "field_type": "string",
            "validators": {"pattern": "(a+)+$"},
        },
        {"api_key": "extra", "field_type": "json", "default": {"a": [1]}},
    ]
    response = api.post("/item-types", json=item_type_body("stock", fields))
    assert response.status_code == 201, response.text


def test_bad_items_fail_alone(api: httpx.Client, stock: None) -> None:
    deep = msgspec.Raw(b"[" * 1500 + b"1" + b"]" * 1500)
    items: list[Any] = [
        {"item_type": "stock", "qty": 1, "name": "ok-1"},
        {"item_type": "stock", "qty": -1},
        {"item_type": "stock", "qty": 1.5},
        {"item_type": "stock", "big": 2**63},
        {"item_type": "stock", "at": "0001-01-01T00:00:00+01:00"},
        {"item_type": "stock", "at": "9999-12-31T23:59:59-01:00"},
        {"item_type": "stock", "name": "nul\u0000x"},
        {"item_type": "stock", "extra": deep},
        {"item_type": "stock", "code": "a" * 40 + "!"},
        {
            "item_type": "stock",
            "created_at": "9999-12-31T23:59:59.999999Z",
            "name": "far",
        },
        {"item_type": "stock", "qty": 2, "name": "ok-2"},
    ]
    started = time.monotonic()
    # NDJSON: one item a line, so the item nested too deeply fails alone (in a
    # JSON array it makes the whole body unreadable: a 400).
    response = api.post(
        "/items/bulk-create-jobs",
        content=b"\n".join(msgspec.json.encode(item) for item in items),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json()["data"]["id"])
    assert time.monotonic() - started < 10  # no pattern holds the server

    result = job["attributes"]["result"]
    assert job["attributes"]["status"] == "completed_with_errors"
    failed = {e["index"]: e["code"] for e in result["errors"]}
    assert set(failed) == {1, 2, 3, 4, 5, 6, 7, 8}
    assert failed[7] == "invalid_json"  # nested too deeply
    assert set(failed.values()) <= {"invalid_value", "invalid_type", "invalid_json"}
    data = {d["meta"]["index"]: d for d in result["data"]}
    assert sorted(data) == [0, 9, 10]
    assert data[0]["extra"] == {"a": [1]}
    assert data[9]["created_at"] == "9999-12-31T23:59:59.999999Z"
    listed = api.get("/items", params={"filter[type]": "stock"})
    assert listed.status_code == 200
    assert listed.json()["meta"]["total_count"] == 3


@pytest.mark.parametrize(
    "params",
    [
        {"filter[fields][big][eq]": str(2**63)},
        {"filter[fields][name][eq]": "a\u0000b"},
        {"filter[fields][at][gt]": "0001-01-01T00:00:00+01:00"},
        {"filter[fields][code][matches]": "(a)\\1"},
    ],
)
def test_bad_filters(api: httpx.Client, stock: None, params: dict[str, str]) -> None:
    response = api.get("/items", params={"filter[type]": "stock", **params})
    assert response.status_code == 400, response.text


def test_matches_runs_in_linear_time(api: httpx.Client, stock: None) -> None:
    bulk_create(api, [{"item_type": "stock", "name": "a" * 5000 + "!"}])
    started = time.monotonic()
    response = api.get(
        "/items",
        params={"filter[type]": "stock", "filter[fields][name][matches]": "^(a+)+$"},
    )
    assert response.status_code == 200
    assert response.json()["meta"]["total_count"] == 0
    assert time.monotonic() - started < 5


def test_versions_must_be_integers(api: httpx.Client, stock: None) -> None:
    item = api.post("/items", json={"data": {"item_type": "stock", "name": "v"}})
    item_id = item.json()["data"]["id"]
    for version in ("1", 1.0, True, [1]):
        response = api.patch(
            f"/items/{item_id}", json={"data": {"qty": 5, "meta": {"version": version}}}
        )
        assert response.status_code == 422, version
        error = response.json()["errors"][0]
        assert error["source"]["pointer"] == "/data/meta/version"
    update = api.post(
        "/items/bulk-update-jobs",
        json={
            "data": [
                {"id": item_id, "attributes": {"qty": 5}, "meta": {"version": "1"}}
            ]
        },
    )
    job = wait_job(api, update.json()["data"]["id"])
    assert job["attributes"]["result"]["errors"][0]["field"] == "meta.version"
    assert api.get(f"/items/{item_id}").json()["data"]["meta"]["version"] == 1


@pytest.mark.parametrize(
    "field",
    [
        {
            "api_key": "x",
            "field_type": "datetime",
            "default": "0001-01-01T00:00:00+01:00",
        },
        {"api_key": "x", "field_type": "string", "validators": {"pattern": "(?<=a)b"}},
        {"api_key": "x", "field_type": "integer", "default": 2**64},
    ],
)
def test_bad_definitions_are_refused(api: httpx.Client, field: dict[str, Any]) -> None:
    response = api.post("/item-types", json=item_type_body("thing", [field]))
    assert response.status_code == 422, response.text


def test_option_errors_say_where(api: httpx.Client, stock: None) -> None:
    url = "/items/bulk-create-jobs"
    body = api.post(url, json={"data": [{}], "chunk_size": "many"})
    assert body.json()["errors"][0]["source"] == {"pointer": "/chunk_size"}
    query = api.post(
        url,
        content=b"{}\n",
        params={"chunk_size": "many"},
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert query.json()["errors"][0]["source"] == {"parameter": "chunk_size"}
    plain = api.post(
        "/items", content=b'{"data": {}}', headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415


def test_defaults_are_typed_and_applied(api: httpx.Client) -> None:
    fields = [
        {"api_key": "name", "field_type": "string"},
        {"api_key": "at", "field_type": "datetime", "default": "2020-01-01T00:00:00Z"},
        {"api_key": "n", "field_type": "integer", "default": "5"},
    ]
    assert api.post("/item-types", json=item_type_body("d", fields)).is_success
    item = api.post("/items", json={"data": {"item_type": "d", "name": "x"}})
    assert item.status_code == 201, item.text
    assert item.json()["data"]["at"] == "2020-01-01T00:00:00.000000Z"
    assert item.json()["data"]["n"] == 5


def test_bad_entries_of_update_destroy_and_link_by_fail_alone(
    api: httpx.Client,
) -> None:
    movie = [{"api_key": "movie_id", "field_type": "integer", "unique": True}]
    rating = [
        {
            "api_key": "movie",
            "field_type": "link",
            "validators": {"item_types": ["movie"]},
        }
    ]
    assert api.post("/item-types", json=item_type_body("movie", movie)).is_success
    assert api.post("/item-types", json=item_type_body("rating", rating)).is_success
    made = bulk_create(api, [{"item_type": "movie", "movie_id": i} for i in (1, 2)])
    a, b = (m["id"] for m in made["attributes"]["result"]["data"])
    deep = b"[" * 2000 + b"1" + b"]" * 2000
    ndjson = {"Content-Type": "application/x-ndjson"}

    linked = bulk_create(
        api,
        [{"item_type": "rating", "movie": 1}, {"item_type": "rating", "movie": 2**63}],
        link_by={"movie": "movie_id"},
    )
    assert linked["attributes"]["result"]["successful_items"] == 1
    assert linked["attributes"]["result"]["errors"][0]["code"] == "link_not_found"

    body = b'{"id": "%s", "attributes": {"movie_id": 7}}\n' % b.encode()
    body += b'{"id": "%s", "attributes": {"movie_id": %s}}\n' % (a.encode(), deep)
    update = api.post("/items/bulk-update-jobs", content=body, headers=ndjson)
    job = wait_job(api, update.json()["data"]["id"])
    result = job["attributes"]["result"]
    assert (result["successful_items"], result["failed_items"]) == (1, 1)
    # An input nested past what a response holds comes back as text.
    assert isinstance(result["failed_items_data"][0], str)

    destroy = api.post(
        "/items/bulk-destroy-jobs", content=deep + b"\n" + b'"%s"' % b.encode(),
        headers=ndjson,
    )  # fmt: skip
    job = wait_job(api, destroy.json()["data"]["id"])
    assert job["attributes"]["result"]["errors"][0]["code"] == "invalid_json"
    assert job["attributes"]["result"]["successful_items"] == 1


def test_large_items_make_smaller_chunks(api: httpx.Client) -> None:
    fields = [{"api_key": "text", "field_type": "text"}]
    assert api.post("/item-types", json=item_type_body("doc", fields)).is_success
    item = msgspec.json.encode({"item_type": "doc", "text": "x" * 500_000})
    response = api.post(
        "/items/bulk-create-jobs",
        content=b"\n".join([item] * 40),
        headers={"Content-Type": "application/x-ndjson"},
    )
    job = wait_job(api, response.json()["data"]["id"])
    details = job["attributes"]["details"]
    assert job["attributes"]["status"] == "completed"
    assert details["chunks_total"] >= 3  # cut at 8 MiB, not at 1,000 items


@pytest.mark.parametrize(
    "params",
    [
        {"filter[type]": ",".join(["stock"] * 101)},
        {"filter[type]": ","},
        {"order_by": ",".join(["id"] * 11)},
        {"filter[fields][qty][in]": ",".join(["1"] * 1001)},
    ],
)
def test_oversized_queries(
    api: httpx.Client, stock: None, params: dict[str, str]
) -> None:
    query = {"filter[type]": "stock", **params}
    response = api.get("/items", params=query)
    assert response.status_code == 400, response.text
