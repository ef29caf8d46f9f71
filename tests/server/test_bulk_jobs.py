"""Bulk jobs through the HTTP API over a real socket."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from tests.conftest import ADMIN_TOKEN, bulk_create, item_type_body, wait_job


def _product(i: int, **extra: Any) -> dict[str, Any]:
    return {"item_type": "product", "name": f"P{i}", "sku": f"S-{i}", **extra}


def _all_items(api: httpx.Client) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = api.get(
            "/items", params={"page[limit]": 500, "page[offset]": offset}
        ).json()
        out.extend(page["data"])
        offset += len(page["data"])
        if offset >= page["meta"]["total_count"]:
            return out


def test_bulk_create__all_good(api: httpx.Client, product_type: Any) -> None:
    items = [_product(i, price=str(i), stock=str(i), active="yes") for i in range(2500)]
    job = bulk_create(api, items, chunk_size=300)

    attrs = job["attributes"]
    assert attrs["status"] == "completed"
    result = attrs["result"]
    assert result["processed_items"] == 2500
    assert result["successful_items"] == 2500
    assert result["failed_items"] == 0
    assert len(result["data"]) == 1000
    assert result["truncated"]["data"] is True
    assert result["data"][0]["sku"] == "S-0"
    assert result["data"][0]["meta"]["index"] == 0
    assert result["data"][0]["price"] == 0.0
    assert result["data"][0]["active"] is True
    assert result["data"][0]["meta"]["created_by_job"] == job["id"]

    page = api.get(
        f"/jobs/{job['id']}/data", params={"page[offset]": 2400, "page[limit]": 1000}
    ).json()
    assert page["meta"]["total_count"] == 2500
    assert [d["meta"]["index"] for d in page["data"]] == list(range(2400, 2500))
    stored = _all_items(api)
    assert sorted(i["sku"] for i in stored) == sorted(f"S-{i}" for i in range(2500))


def test_bulk_create__bad_items_reported_good_ones_applied(
    api: httpx.Client, product_type: Any
) -> None:
    before = api.post(
        "/items", json={"data": {"item_type": "product", "name": "old", "sku": "OLD"}}
    ).json()["data"]
    items: list[Any] = [
        _product(0),
        {"item_type": "product", "name": "x"},  # 1: sku missing
        _product(2, price="cheap"),  # 2: wrong type
        _product(3, price=-5),  # 3: out of range
        _product(4, status="gone"),  # 4: not an enum value
        _product(5, code="lower"),  # 5: pattern
        _product(6, colour="red"),  # 6: unknown field
        {"item_type": "nothing", "name": "x", "sku": "Z"},  # 7: unknown type
        {"item_type": "product", "name": "dup", "sku": "OLD"},  # 8: stored before
        _product(0),  # 9: repeated in the input
        "not an object",  # 10
        _product(11, price="NaN"),  # 11: NaN
        _product(12, sku="X" * 40),  # 12: too long
        _product(13, seen_at="yesterday"),  # 13: bad datetime
        _product(14),
    ]
    job = bulk_create(api, items)

    attrs = job["attributes"]
    assert attrs["status"] == "completed_with_errors"
    result = attrs["result"]
    assert (result["successful_items"], result["failed_items"]) == (2, 13)
    errors = {e["index"]: e for e in result["errors"]}
    expected = {
        1: ("required", "sku"),
        2: ("invalid_type", "price"),
        3: ("invalid_value", "price"),
        4: ("invalid_value", "status"),
        5: ("invalid_value", "code"),
        6: ("unknown_field", "colour"),
        7: ("unknown_item_type", "item_type"),
        8: ("not_unique", "sku"),
        9: ("not_unique", "sku"),
        10: ("invalid_item", None),
        11: ("invalid_value", "price"),
        12: ("invalid_value", "sku"),
        13: ("invalid_value", "seen_at"),
    }
    assert {i: (e["code"], e["field"]) for i, e in errors.items()} == expected
    assert before["id"] in errors[8]["message"]
    assert "earlier in this job" in errors[9]["message"]
    # failed_items_data[i] is the input of errors[i], ready to fix and resend.
    assert result["failed_items_data"] == [items[i] for i in sorted(expected)]
    ndjson = api.get(f"/jobs/{job['id']}/failed-items", params={"format": "ndjson"})
    lines = [msgspec.json.decode(x) for x in ndjson.content.splitlines()]
    assert lines == result["failed_items_data"]

    unchanged = api.get(f"/items/{before['id']}").json()["data"]
    assert unchanged == before
    assert sorted(i["sku"] for i in _all_items(api)) == ["OLD", "S-0", "S-14"]


def test_bulk_create__skip_duplicates(api: httpx.Client, product_type: Any) -> None:
    bulk_create(api, [_product(i) for i in range(5)])
    job = bulk_create(api, [_product(i) for i in range(3, 8)], skip_duplicates=True)
    result = job["attributes"]["result"]
    assert job["attributes"]["status"] == "completed"
    assert (result["successful_items"], result["skipped_items"]) == (3, 2)
    assert len(_all_items(api)) == 8


def test_bulk_create__ndjson_stream_with_options(
    api: httpx.Client, product_type: Any
) -> None:
    lines = [msgspec.json.encode(_product(i)) for i in range(1200)]
    lines.insert(5, b"{broken")
    body = b"\n".join(lines) + b"\n\n"
    response = api.post(
        "/items/bulk-create-jobs",
        content=body,
        params={"skip_duplicates": "true", "chunk_size": "100"},
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/jobs/{response.json()['data']['id']}"
    job = wait_job(api, response.json()["data"]["id"])
    attrs = job["attributes"]
    assert attrs["options"] == {"skip_duplicates": True, "chunk_size": 100}
    assert attrs["details"]["chunks_total"] == 13
    assert attrs["result"]["successful_items"] == 1200
    assert [(e["index"], e["code"]) for e in attrs["result"]["errors"]] == [
        (5, "invalid_json")
    ]
    assert attrs["result"]["failed_items_data"] == ["{broken"]


def test_bulk_create__links_by_id_and_by_unique_field(api: httpx.Client) -> None:
    movie = [
        {"api_key": "movie_id", "field_type": "integer", "unique": True},
        {"api_key": "title", "field_type": "string"},
    ]
    rating = [
        {
            "api_key": "movie",
            "field_type": "link",
            "validators": {"item_types": ["movie"]},
        },
        {"api_key": "stars", "field_type": "float"},
    ]
    assert api.post("/item-types", json=item_type_body("movie", movie)).is_success
    assert api.post("/item-types", json=item_type_body("rating", rating)).is_success
    movies = bulk_create(
        api,
        [
            {"item_type": "movie", "movie_id": str(i), "title": f"M{i}"}
            for i in range(3)
        ],
    )
    first = movies["attributes"]["result"]["data"][0]

    by_id = bulk_create(
        api,
        [
            {"item_type": "rating", "movie": first["id"], "stars": 4},
            {"item_type": "rating", "movie": "01AAAAAAAAAAAAAAAAAAAAAAAA"},
            {"item_type": "rating", "movie": "nonsense"},
        ],
    )
    errors = by_id["attributes"]["result"]["errors"]
    assert [(e["index"], e["code"], e["field"]) for e in errors] == [
        (1, "link_not_found", "movie"),
        (2, "invalid_value", "movie"),
    ]
    by_key = bulk_create(
        api,
        [
            {"item_type": "rating", "movie": "2", "stars": "3.5"},
            {"item_type": "rating", "movie": 0},
            {"item_type": "rating", "movie": "99"},
        ],
        link_by={"movie": "movie_id"},
    )
    result = by_key["attributes"]["result"]
    assert [d["movie"] for d in result["data"]] == [
        movies["attributes"]["result"]["data"][2]["id"],
        first["id"],
    ]
    assert [(e["index"], e["code"]) for e in result["errors"]] == [
        (2, "link_not_found")
    ]

    wrong = api.post(
        "/items/bulk-create-jobs",
        json={"data": [{"item_type": "rating"}], "link_by": {"movie": "title"}},
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["source"]["pointer"] == "/link_by/movie"


def test_bulk_update(api: httpx.Client, product_type: Any) -> None:
    created = bulk_create(api, [_product(i, price=1) for i in range(4)])
    ids = [d["id"] for d in created["attributes"]["result"]["data"]]
    response = api.post(
        "/items/bulk-update-jobs",
        json={
            "data": [
                {"id": ids[0], "attributes": {"price": 9.5}},
                {"id": ids[1], "attributes": {"price": 2}, "meta": {"version": 7}},
                {"id": ids[2], "attributes": {"sku": "S-3"}},
                {"id": "01AAAAAAAAAAAAAAAAAAAAAAAA", "attributes": {"price": 1}},
                {"id": ids[0], "attributes": {"price": 1}},
                {"id": ids[3], "attributes": {"price": -1}},
                {"attributes": {}},
            ]
        },
    )
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json()["data"]["id"])
    result = job["attributes"]["result"]
    codes = [(e["index"], e["code"]) for e in result["errors"]]
    assert codes == [
        (1, "stale_version"),
        (2, "not_unique"),
        (3, "not_found"),
        (4, "duplicate_id"),
        (5, "invalid_value"),
        (6, "invalid_item"),
    ]
    updated = api.get(f"/items/{ids[0]}").json()["data"]
    assert updated["price"] == 9.5
    assert updated["name"] == "P0"
    assert updated["meta"]["version"] == 2
    assert updated["meta"]["updated_by_job"] == job["id"]
    for item_id in ids[1:]:
        assert api.get(f"/items/{item_id}").json()["data"]["meta"]["version"] == 1


def test_bulk_destroy(api: httpx.Client, product_type: Any) -> None:
    created = bulk_create(api, [_product(i) for i in range(5)])
    ids = [d["id"] for d in created["attributes"]["result"]["data"]]
    response = api.post(
        "/items/bulk-destroy-jobs",
        json={"items": [ids[0], ids[1], ids[0], "01AAAAAAAAAAAAAAAAAAAAAAAA", 7]},
    )
    job = wait_job(api, response.json()["data"]["id"])
    result = job["attributes"]["result"]
    assert result["successful_items"] == 2
    assert [(e["index"], e["code"], e["id"]) for e in result["errors"]] == [
        (2, "duplicate_id", ids[0]),
        (3, "not_found", "01AAAAAAAAAAAAAAAAAAAAAAAA"),
        (4, "invalid_item", None),
    ]
    assert result["data"] == [{"id": ids[0], "index": 0}, {"id": ids[1], "index": 1}]
    left = sorted(i["id"] for i in _all_items(api))
    assert left == sorted(ids[2:])


def test_requests_that_are_not_jobs(api: httpx.Client, product_type: Any) -> None:
    url = "/items/bulk-create-jobs"
    cases = [
        (
            api.post(
                url, content=b"{nope", headers={"Content-Type": "application/json"}
            ),
            400,
        ),
        (api.post(url, json={"skip_duplicates": True}), 422),
        (api.post(url, json={"data": []}), 422),
        (api.post(url, json={"data": {"a": 1}}), 422),
        (api.post(url, json=[1, 2]), 422),
        (api.post(url, json={"data": [1], "bogus": 1}), 422),
        (api.post(url, json={"data": [1], "chunk_size": 0}), 422),
        (api.post(url, content=b"a=b", headers={"Content-Type": "text/plain"}), 415),
        (
            api.post(
                url, content=b"", headers={"Content-Type": "application/x-ndjson"}
            ),
            422,
        ),
        (api.post(url, content=b""), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        error = response.json()["errors"][0]
        assert error["status"] == str(status)
        assert error["code"] and error["detail"]
    # Refused requests leave no job behind.
    assert api.get("/jobs").json()["meta"]["total_count"] == 0


def test_jobs_list_filters(api: httpx.Client, product_type: Any) -> None:
    bulk_create(api, [_product(1)])
    bulk_create(api, [_product(1)])
    done = api.get("/jobs", params={"filter[status]": "completed"}).json()
    assert done["meta"]["total_count"] == 1
    assert (
        api.get("/jobs", params={"filter[kind]": "bulk_create"}).json()["meta"][
            "total_count"
        ]
        == 2
    )
    bad = api.get("/jobs", params={"filter[status]": "bogus"})
    assert bad.status_code == 400
    assert api.get("/jobs/01AAAAAAAAAAAAAAAAAAAAAAAA").status_code == 404


def test_size_limits(make_server: Any) -> None:
    server = make_server(max_json_bytes=2000, max_body_bytes=5000, max_item_bytes=300)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers) as api:
        fields = [{"api_key": "text", "field_type": "text"}]
        assert api.post("/item-types", json=item_type_body("note", fields)).is_success
        url = "/items/bulk-create-jobs"
        big = [{"item_type": "note", "text": "x" * 100} for _ in range(30)]
        response = api.post(url, json={"data": big})
        assert response.status_code == 413
        assert "NDJSON" in response.json()["errors"][0]["detail"]

        ndjson = {"Content-Type": "application/x-ndjson"}
        lines = [msgspec.json.encode(item) for item in big * 3]
        response = api.post(url, content=b"\n".join(lines), headers=ndjson)
        assert response.status_code == 413

        small = [msgspec.json.encode({"item_type": "note", "text": "ok"})] * 2
        huge = msgspec.json.encode({"item_type": "note", "text": "y" * 400})
        body = b"\n".join([small[0], huge, small[1]])
        response = api.post(url, content=body, headers=ndjson)
        assert response.status_code == 202
        job = wait_job(api, response.json()["data"]["id"])
        result = job["attributes"]["result"]
        assert result["successful_items"] == 2
        assert [(e["index"], e["code"]) for e in result["errors"]] == [
            (1, "item_too_large")
        ]
        # Refused bodies left no job behind; only the accepted one exists.
        assert api.get("/jobs").json()["meta"]["total_count"] == 1
        assert api.get("/openapi.json").status_code == 200
    assert httpx.get(f"{server.url}/openapi.json").status_code == 401


def test_destroy_refuses_items_still_linked(api: httpx.Client) -> None:
    movie = [{"api_key": "title", "field_type": "string"}]
    rating = [
        {
            "api_key": "movie",
            "field_type": "link",
            "validators": {"item_types": ["movie"]},
        },
        {
            "api_key": "also",
            "field_type": "links",
            "validators": {"item_types": ["movie"]},
        },
    ]
    assert api.post("/item-types", json=item_type_body("movie", movie)).is_success
    assert api.post("/item-types", json=item_type_body("rating", rating)).is_success
    movies = bulk_create(api, [{"item_type": "movie", "title": t} for t in "ABCD"])
    a, b, c, d = (m["id"] for m in movies["attributes"]["result"]["data"])
    ratings = bulk_create(
        api,
        [
            {"item_type": "rating", "movie": a},
            {"item_type": "rating", "movie": b},
            {"item_type": "rating", "also": [c]},
        ],
    )
    r_a, r_b, r_c = (r["id"] for r in ratings["attributes"]["result"]["data"])

    single = api.delete(f"/items/{a}")
    assert single.status_code == 409
    assert single.json()["errors"][0]["code"] == "in_use"
    # b goes with the rating that links to it; a, c stay linked; d is free.
    response = api.post("/items/bulk-destroy-jobs", json={"items": [a, b, r_b, c, d]})
    job = wait_job(api, response.json()["data"]["id"])
    result = job["attributes"]["result"]
    assert [(e["index"], e["code"]) for e in result["errors"]] == [
        (0, "in_use"),
        (3, "in_use"),
    ]
    assert r_a in result["errors"][0]["message"]
    assert r_c in result["errors"][1]["message"]
    assert sorted(i["id"] for i in _all_items(api)) == sorted([a, c, r_a, r_c])
    linked_type = api.delete("/item-types/movie")
    assert linked_type.status_code == 409
