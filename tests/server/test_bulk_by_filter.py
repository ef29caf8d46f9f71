"""Bulk update and bulk destroy by filter, through the HTTP API (issue 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lorry.jobs import runner
from tests.conftest import (
    ADMIN_TOKEN,
    PRODUCT_FIELDS,
    RunningServer,
    bulk_create,
    item_type_body,
    wait_job,
)


def _products(n: int, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"item_type": "product", "name": f"P{i}", "sku": f"S{i}", **extra}
        for i in range(start, start + n)
    ]


def _by_sku(api: httpx.Client) -> dict[str, dict[str, Any]]:
    page = api.get(
        "/items", params={"filter[type]": "product", "page[limit]": 500}
    ).json()
    return {item["sku"]: item for item in page["data"]}


@pytest.fixture
def stocked(api: httpx.Client, product_type: Any) -> None:
    """Twelve drafts, eight archived products."""
    bulk_create(
        api, _products(12, status="draft") + _products(8, 12, status="archived")
    )


_DRAFTS = {"type": "product", "fields": {"status": {"eq": "draft"}}}


def _accept(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/items/{path}", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()["data"]
    return job


def test_update_by_filter__only_matching_items_change(
    api: httpx.Client, stocked: None
) -> None:
    accepted = _accept(
        api,
        "bulk-update-jobs",
        {"filter": _DRAFTS, "data": {"stock": 7}, "chunk_size": 5},
    )
    details = accepted["attributes"]["details"]
    assert (details["total"], details["selected"]) == (12, 12)
    assert accepted["attributes"]["options"]["filter"] == _DRAFTS
    job = wait_job(api, accepted["id"])
    attrs = job["attributes"]
    assert attrs["kind"] == "bulk_update"
    assert attrs["status"] == "completed"
    assert attrs["result"]["successful_items"] == 12
    assert len(attrs["result"]["data"]) == 12
    items = _by_sku(api)
    assert {s for s, i in items.items() if i.get("stock") == 7} == {
        f"S{i}" for i in range(12)
    }
    assert all(items[f"S{i}"].get("stock") is None for i in range(12, 20))


def test_update_by_filter__reports_per_item_failures(
    api: httpx.Client, stocked: None
) -> None:
    accepted = _accept(
        api,
        "bulk-update-jobs",
        {"filter": {"type": "product"}, "data": {"price": -1}},
    )
    job = wait_job(api, accepted["id"])
    result = job["attributes"]["result"]
    assert job["attributes"]["status"] == "completed_with_errors"
    assert (result["processed_items"], result["failed_items"]) == (20, 20)
    error = result["errors"][0]
    assert (error["code"], error["field"]) == ("invalid_value", "price")
    assert error["id"] in {i["id"] for i in _by_sku(api).values()}
    assert result["failed_items_data"][0]["attributes"] == {"price": -1}


def test_destroy_by_filter__only_matching_items_go(
    api: httpx.Client, stocked: None
) -> None:
    archived = {"type": "product", "fields": {"status": {"eq": "archived"}}}
    accepted = _accept(api, "bulk-destroy-jobs", {"filter": archived})
    assert accepted["attributes"]["details"]["selected"] == 8
    job = wait_job(api, accepted["id"])
    assert job["attributes"]["status"] == "completed"
    assert job["attributes"]["result"]["successful_items"] == 8
    assert sorted(_by_sku(api)) == sorted(f"S{i}" for i in range(12))


def test_by_filter__items_created_after_the_accept_are_untouched(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(workers=0)  # the job waits until run by hand below
    with _client(server) as api:
        api.post("/item-types", json=item_type_body("product", PRODUCT_FIELDS))
        created = api.post("/items/bulk-create-jobs", json={"data": _products(5)})
        _run_jobs(server)
        wait_job(api, created.json()["data"]["id"])
        accepted = _accept(api, "bulk-destroy-jobs", {"filter": _DRAFTS})
        late = api.post(
            "/items",
            json={"data": {"item_type": "product", "name": "late", "sku": "LATE"}},
        )
        assert late.status_code == 201, late.text
        assert late.json()["data"]["status"] == "draft"  # it matches the filter
        _run_jobs(server)
        job = wait_job(api, accepted["id"])
        assert job["attributes"]["result"]["processed_items"] == 5
        assert list(_by_sku(api)) == ["LATE"]


def _client(server: RunningServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=60,
    )


def _run_jobs(server: RunningServer) -> None:
    db, settings = server.runtime.db, server.runtime.settings
    claim = runner.claim(db, settings, "test-worker")
    while claim is not None:
        claim = runner.run_claim(db, settings, claim)


def test_by_filter__dry_run_counts_and_writes_nothing(
    api: httpx.Client, stocked: None
) -> None:
    before = _by_sku(api)
    update = _accept(
        api,
        "bulk-update-jobs",
        {"filter": _DRAFTS, "data": {"stock": 1}, "dry_run": True},
    )
    destroy = _accept(
        api, "bulk-destroy-jobs", {"filter": {"type": "product"}, "dry_run": True}
    )
    for accepted, count in ((update, 12), (destroy, 20)):
        job = wait_job(api, accepted["id"])
        attrs = job["attributes"]
        assert attrs["options"]["dry_run"] is True
        assert attrs["status"] == "completed"
        assert attrs["result"]["successful_items"] == count
        assert attrs["result"]["data"] == []
    assert _by_sku(api) == before


def test_by_filter__bad_filter_is_422_with_a_pointer(
    api: httpx.Client, stocked: None
) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("bulk-destroy-jobs", {"filter": {"type": "nope"}}, "/filter/type"),
        ("bulk-destroy-jobs", {"filter": {"colour": "red"}}, "/filter/colour"),
        (
            "bulk-update-jobs",
            {"filter": {"type": "product", "fields": {"nope": {"eq": 1}}}, "data": {}},
            "/data",
        ),
        (
            "bulk-update-jobs",
            {
                "filter": {"type": "product", "fields": {"nope": {"eq": 1}}},
                "data": {"stock": 1},
            },
            "/filter/fields/nope",
        ),
        (
            "bulk-update-jobs",
            {
                "filter": {"type": "product", "fields": {"stock": {"gt": "many"}}},
                "data": {"stock": 1},
            },
            "/filter/fields/stock/gt",
        ),
        ("bulk-destroy-jobs", {"filter": {}}, "/filter"),
        ("bulk-destroy-jobs", {"filter": "all"}, "/filter"),
        ("bulk-destroy-jobs", {"filter": _DRAFTS, "items": []}, "/items"),
        ("bulk-destroy-jobs", {"filter": _DRAFTS, "atomic": 3}, "/atomic"),
    ]
    for path, body, pointer in cases:
        response = api.post(f"/items/{path}", json=body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["errors"][0]
        assert error["source"] == {"pointer": pointer}, (body, error)
    assert len(_by_sku(api)) == 20
    assert api.get("/jobs").json()["meta"]["total_count"] == 1  # the bulk create


def test_by_filter__empty_selection_is_422_empty_job(
    api: httpx.Client, stocked: None
) -> None:
    nothing = {"type": "product", "fields": {"stock": {"gt": 100}}}
    response = api.post(
        "/items/bulk-update-jobs", json={"filter": nothing, "data": {"stock": 1}}
    )
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert (error["code"], error["source"]) == ("empty_job", {"pointer": "/filter"})


def test_by_filter__job_control_options_apply(api: httpx.Client, stocked: None) -> None:
    accepted = _accept(
        api,
        "bulk-update-jobs",
        {"filter": {"type": "product"}, "data": {"price": -1}, "atomic": True},
    )
    job = wait_job(api, accepted["id"])
    assert job["attributes"]["options"]["atomic"] is True
    assert job["attributes"]["status"] == "failed"
    assert all(i.get("price") is None for i in _by_sku(api).values())
