"""The clients split a long input into several jobs and wait for them with
one combined progress, against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from lorry import AsyncClient, Client
from lorry.client import GroupProgress
from tests.conftest import ADMIN_TOKEN, PRODUCT_FIELDS


def _products(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"item_type": "product", "name": f"P{i}", "sku": f"S{i}"}


def _check_progress(seen: list[GroupProgress], jobs: int, total: int) -> None:
    ratios = [group.progress for group in seen]
    assert ratios == sorted(ratios), "combined progress went back"
    last = seen[-1]
    assert last.progress == 1.0 and last.is_finished
    assert (last.processed, last.total, last.successful) == (total, total, total)
    assert last.finished_jobs == len(last.jobs) == jobs


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, token=ADMIN_TOKEN) as client:
        client.item_types.create(
            api_key="product", name="Product", fields=PRODUCT_FIELDS
        )
        yield client


def test_bulk_create_jobs__splits_and_waits_with_combined_progress(
    client: Client,
) -> None:
    jobs = client.items.bulk_create_jobs(_products(2500), per_job=1000, chunk_size=250)

    assert len(jobs) == 3
    assert len({job.id for job in jobs}) == 3
    seen: list[GroupProgress] = []
    finished = client.jobs.wait_all(jobs, on_progress=seen.append, timeout=120)

    assert [job.id for job in finished] == [job.id for job in jobs]
    assert [job.attributes.status for job in finished] == ["completed"] * 3
    assert [job.attributes.details.total for job in finished] == [1000, 1000, 500]
    _check_progress(seen, 3, 2500)
    skus = [item["sku"] for item in client.items.iter(page_size=500)]
    assert sorted(skus) == sorted(f"S{i}" for i in range(2500))


def test_bulk_create_jobs__options_reach_every_job(client: Client) -> None:
    jobs = client.items.bulk_create_jobs(_products(5), per_job=2, dry_run=True)

    finished = client.jobs.wait_all([job.id for job in jobs], timeout=60)

    assert len(finished) == 3
    assert all(job.attributes.options["dry_run"] for job in finished)
    assert list(client.items.iter()) == []
    with pytest.raises(ValueError, match="per_job"):
        client.items.bulk_create_jobs(_products(1), per_job=0)
    with pytest.raises(TypeError, match="idempotency"):
        client.items.bulk_create_jobs(_products(1), idempotency_key="k")


def test_async_bulk_create_jobs__from_an_async_iterable(server: Any) -> None:
    async def products() -> AsyncIterator[dict[str, Any]]:
        for item in _products(1200):
            yield item

    async def run() -> None:
        async with AsyncClient(server.url, token=ADMIN_TOKEN) as client:
            await client.item_types.create(
                api_key="product", name="Product", fields=PRODUCT_FIELDS
            )
            jobs = await client.items.bulk_create_jobs(products(), per_job=500)
            assert len(jobs) == 3
            seen: list[GroupProgress] = []
            finished = await client.jobs.wait_all(
                jobs, on_progress=seen.append, timeout=120
            )
            assert {job.attributes.status for job in finished} == {"completed"}
            _check_progress(seen, 3, 1200)
            page = await client.items.list(page={"limit": 1})
            assert page.total_count == 1200

    asyncio.run(run())
