"""Bulk create's ``dry_run`` over a real socket: every check, no writes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec

from lorry import AsyncClient, Client
from tests.conftest import ADMIN_TOKEN, bulk_create, wait_job


def _product(i: int, **extra: Any) -> dict[str, Any]:
    return {"item_type": "product", "name": f"P{i}", "sku": f"S-{i}", **extra}


def _skus(api: httpx.Client) -> list[str]:
    page = api.get("/items", params={"page[limit]": 500}).json()
    return sorted(item["sku"] for item in page["data"])


def _stored(api: httpx.Client) -> None:
    response = api.post(
        "/items", json={"data": {"item_type": "product", "name": "old", "sku": "OLD"}}
    )
    assert response.status_code == 201, response.text


_ITEMS: list[Any] = [
    _product(0),
    {"item_type": "product", "name": "dup", "sku": "OLD"},  # 1: stored before
    _product(2, price="cheap"),  # 2: wrong type
    _product(3),
    _product(0),  # 4: repeated in the input
]
_EXPECTED = {
    1: ("not_unique", "sku"),
    2: ("invalid_type", "price"),
    4: ("not_unique", "sku"),
}


def _errors(result: dict[str, Any]) -> dict[int, tuple[str, str | None]]:
    return {e["index"]: (e["code"], e["field"]) for e in result["errors"]}


def test_dry_run__reports_what_would_happen_and_writes_nothing(
    api: httpx.Client, product_type: Any
) -> None:
    _stored(api)

    job = bulk_create(api, _ITEMS, dry_run=True)

    attrs = job["attributes"]
    assert attrs["options"]["dry_run"] is True
    assert attrs["status"] == "completed_with_errors"
    result = attrs["result"]
    assert (result["successful_items"], result["failed_items"]) == (2, 3)
    assert _errors(result) == _EXPECTED
    assert result["failed_items_data"] == [_ITEMS[i] for i in sorted(_EXPECTED)]
    assert result["data"] == []
    assert _skus(api) == ["OLD"]


def test_dry_run__counts_skipped_duplicates(
    api: httpx.Client, product_type: Any
) -> None:
    _stored(api)
    items = [_product(0), {"item_type": "product", "name": "d", "sku": "OLD"}]

    job = bulk_create(api, items, dry_run=True, skip_duplicates=True)

    result = job["attributes"]["result"]
    assert job["attributes"]["status"] == "completed"
    assert (result["successful_items"], result["skipped_items"]) == (1, 1)
    assert _skus(api) == ["OLD"]


def test_dry_run__of_a_streamed_body_is_a_query_parameter(
    api: httpx.Client, product_type: Any
) -> None:
    body = b"".join(msgspec.json.encode(item) + b"\n" for item in _ITEMS)
    _stored(api)
    response = api.post(
        "/items/bulk-create-jobs",
        content=body,
        params={"dry_run": "true"},
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text

    job = wait_job(api, response.json()["data"]["id"])

    assert job["attributes"]["options"]["dry_run"] is True
    assert _errors(job["attributes"]["result"]) == _EXPECTED
    assert _skus(api) == ["OLD"]


def test_dry_run__refuses_a_value_that_is_not_a_flag(
    api: httpx.Client, product_type: Any
) -> None:
    response = api.post(
        "/items/bulk-create-jobs", json={"data": [_product(0)], "dry_run": "maybe"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["source"]["pointer"] == "/dry_run"


def test_dry_run__from_both_clients(server: Any, product_type: Any) -> None:
    with Client(server.url, token=ADMIN_TOKEN) as client:
        client.items.create({"item_type": "product", "name": "old", "sku": "OLD"})
        listed = client.items.bulk_create_job(_ITEMS, dry_run=True)
        streamed = client.items.bulk_create_job(iter(_ITEMS), dry_run=True)
        for started in (listed, streamed):
            job = client.jobs.wait(started, timeout=60)
            assert job.attributes.options["dry_run"] is True
            assert job.attributes.result is not None
            assert job.attributes.result.successful_items == 2
            assert {e.index for e in client.jobs.iter_errors(job)} == set(_EXPECTED)

    async def run() -> None:
        async with AsyncClient(server.url, token=ADMIN_TOKEN) as client:
            started = await client.items.bulk_create_job(_ITEMS, dry_run=True)
            job = await client.jobs.wait(started, timeout=60)
            assert job.attributes.result is not None
            assert job.attributes.result.failed_items == 3

    asyncio.run(run())
    with Client(server.url, token=ADMIN_TOKEN) as client:
        skus = [item["sku"] for item in client.items.iter()]
    assert skus == ["OLD"]
