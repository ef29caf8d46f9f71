"""The client's job-control options and its update and destroy by filter,
against a real server: each option shows in the job's options (issue 4)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lorry import AsyncClient, Client
from tests.conftest import ADMIN_TOKEN, PRODUCT_FIELDS

_BUDGET = {"retain_for": 3600, "max_errors": 3, "max_error_rate": 0.5}
_ATOMIC = {"retain_for": 60, "atomic": True}


def _products(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"item_type": "product", "name": f"P{i}", "sku": f"S{i}"}
        for i in range(start, start + n)
    ]


def _shows(options: dict[str, Any], given: dict[str, Any]) -> None:
    assert {k: options.get(k) for k in given} == given


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, token=ADMIN_TOKEN) as client:
        client.item_types.create(
            api_key="product", name="Product", fields=PRODUCT_FIELDS
        )
        client.item_types.create(
            api_key="archive", name="Archive", fields=PRODUCT_FIELDS
        )
        yield client


def test_bulk_jobs__control_options_reach_the_server(
    client: Client, tmp_path: Path
) -> None:
    items = client.items
    created = items.bulk_create_job(_products(4), **_BUDGET)
    _shows(created.attributes.options, _BUDGET)
    client.jobs.wait(created, timeout=60)
    ids = [i["id"] for i in items.list(filter={"type": "product"})]

    # A list that is streamed sends its options as query parameters.
    streamed = items.bulk_create_job(iter(_products(2, 10)), **_ATOMIC)
    _shows(streamed.attributes.options, _ATOMIC)
    client.jobs.wait(streamed, timeout=60)

    changes = [{"id": i, "attributes": {"stock": 1}} for i in ids]
    _shows(items.bulk_update_job(changes, **_ATOMIC).attributes.options, _ATOMIC)
    _shows(items.bulk_update_job(changes, **_BUDGET).attributes.options, _BUDGET)
    destroyed = items.bulk_destroy_job(ids[:1], **_BUDGET)
    _shows(destroyed.attributes.options, _BUDGET)
    atomic = items.bulk_destroy_job(ids[1:2], **_ATOMIC)
    _shows(atomic.attributes.options, _ATOMIC)

    path = tmp_path / "more.csv"
    path.write_text("name,sku\nA,X1\nB,X2\n")
    for given in (_ATOMIC, _BUDGET):
        imported = items.import_job(path, type="product", **given)
        _shows(imported.attributes.options, given)
        client.jobs.wait(imported, timeout=60)

    migrated = items.migrate_job(from_type="product", to_type="archive", **_BUDGET)
    _shows(migrated.attributes.options, _BUDGET)
    exported = items.export_job(filter={"type": "product"}, retain_for=120)
    assert exported.attributes.options["retain_for"] == 120


def test_bulk_jobs__budget_applies(client: Client) -> None:
    bad = [{**p, "price": -1} for p in _products(10)]
    job = client.items.bulk_create_job(bad, chunk_size=2, max_errors=1)
    done = client.jobs.wait(job, timeout=60)
    assert done.attributes.status == "failed"
    assert done.attributes.error is not None
    assert done.attributes.error.code == "error_budget_exceeded"


def test_update_and_destroy_by_filter(client: Client) -> None:
    items = client.items
    client.jobs.wait(items.bulk_create_job(_products(6)), timeout=60)
    few = {"type": "product", "fields": {"sku": {"in": ["S0", "S1", "S2"]}}}

    dry = items.bulk_update_job(filter=few, data={"stock": 5}, dry_run=True)
    assert dry.attributes.details.selected == 3
    assert client.jobs.wait(dry, timeout=60).attributes.result is not None
    assert all(i.get("stock") is None for i in items.iter(filter={"type": "product"}))

    job = items.bulk_update_job(filter=few, data={"stock": 5}, retain_for=60)
    assert job.attributes.options["filter"] == few
    assert job.attributes.options["retain_for"] == 60
    done = client.jobs.wait(job, timeout=60)
    assert done.attributes.result is not None
    assert done.attributes.result.successful_items == 3
    stocked = {i["sku"] for i in items.iter(filter={"type": "product"}) if i["stock"]}
    assert stocked == {"S0", "S1", "S2"}

    gone = items.bulk_destroy_job(filter=few, atomic=True)
    assert gone.attributes.details.total == 3
    assert gone.attributes.options["atomic"] is True
    client.jobs.wait(gone, timeout=60)
    left = sorted(i["sku"] for i in items.iter(filter={"type": "product"}))
    assert left == ["S3", "S4", "S5"]


def test_by_filter__wrong_arguments_are_refused_before_sending(
    client: Client,
) -> None:
    with pytest.raises(TypeError):
        client.items.bulk_destroy_job()
    with pytest.raises(TypeError):
        client.items.bulk_destroy_job(["x"], filter={"type": "product"})
    with pytest.raises(TypeError):
        client.items.bulk_update_job([{"id": "x"}], filter={"type": "product"})
    with pytest.raises(TypeError):
        client.items.bulk_update_job({"stock": 1})


def test_async_client__options_and_filter(server: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, token=ADMIN_TOKEN) as client:
            await client.item_types.create(
                api_key="product", name="Product", fields=PRODUCT_FIELDS
            )
            await client.item_types.create(
                api_key="archive", name="Archive", fields=PRODUCT_FIELDS
            )
            items = client.items
            created = await items.bulk_create_job(_products(4), **_ATOMIC)
            _shows(created.attributes.options, _ATOMIC)
            await client.jobs.wait(created, timeout=60)

            async def more() -> Any:
                for item in _products(2, 10):
                    yield item

            streamed = await items.bulk_create_job(more(), **_BUDGET)
            _shows(streamed.attributes.options, _BUDGET)
            await client.jobs.wait(streamed, timeout=60)

            every = {"type": "product"}
            updated = await items.bulk_update_job(
                filter=every, data={"stock": 2}, **_BUDGET
            )
            _shows(updated.attributes.options, _BUDGET)
            assert updated.attributes.details.selected == 6
            await client.jobs.wait(updated, timeout=60)

            path = tmp_path / "more.csv"
            path.write_text("name,sku\nA,X1\n")
            imported = await items.import_job(path, type="product", **_ATOMIC)
            _shows(imported.attributes.options, _ATOMIC)
            await client.jobs.wait(imported, timeout=60)

            migrated = await items.migrate_job(
                from_type="product", to_type="archive", dry_run=True, **_BUDGET
            )
            _shows(migrated.attributes.options, _BUDGET)
            exported = await items.export_job(retain_for=90)
            assert exported.attributes.options["retain_for"] == 90

            dry = await items.bulk_destroy_job(filter=every, dry_run=True, **_ATOMIC)
            _shows(dry.attributes.options, {**_ATOMIC, "dry_run": True})
            await client.jobs.wait(dry, timeout=60)
            gone = await items.bulk_destroy_job(filter=every, max_errors=0)
            assert gone.attributes.options["max_errors"] == 0
            await client.jobs.wait(gone, timeout=60)
            left = await items.list(filter=every)
            assert left.total_count == 0

    asyncio.run(main())
