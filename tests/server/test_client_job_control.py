"""The client's job control against a real server: resends after a lost
answer make no second job, and retries with fixes (issue 4)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lorry import AsyncClient, Client
from lorry.client import Conflict, FailedItem, TransportError
from tests.conftest import ADMIN_TOKEN, PRODUCT_FIELDS


class DropsAnswers(httpx.HTTPTransport):
    """Sends each request to the server, then loses the answer of the first
    ``drops`` job creations: a time-out after the server accepted."""

    def __init__(self, drops: int = 1) -> None:
        super().__init__()
        self.drops = drops
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path != "/item-types":
            self.keys.append(request.headers.get("Idempotency-Key"))
            if self.drops:
                self.drops -= 1
                response.read()
                response.close()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


class AsyncDropsAnswers(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.drops = 1
        self.keys: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "POST" and request.url.path != "/item-types":
            self.keys.append(request.headers.get("Idempotency-Key"))
            if self.drops:
                self.drops -= 1
                await response.aread()
                await response.aclose()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def _products(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"item_type": "product", "name": f"P{i}", "sku": f"S{i}"}
        for i in range(start, start + n)
    ]


@pytest.fixture
def lossy(server: Any) -> Iterator[tuple[Client, DropsAnswers]]:
    transport = DropsAnswers()
    with Client(server.url, token=ADMIN_TOKEN, transport=transport) as client:
        client.item_types.create(
            api_key="product", name="Product", fields=PRODUCT_FIELDS
        )
        yield client, transport


def _one_job(client: Client, job_id: str) -> None:
    jobs = client.jobs.list()
    assert [j.id for j in jobs] == [job_id], "a resend made a second job"


def test_lost_answer__resent_with_same_key__one_job(
    lossy: tuple[Client, DropsAnswers],
) -> None:
    client, transport = lossy
    job = client.items.bulk_create_job(data=_products(3))
    assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
    assert transport.keys[0]
    done = client.jobs.wait(job, timeout=60)
    assert done.attributes.status == "completed"
    _one_job(client, job.id)
    assert client.items.list(filter={"type": "product"}).total_count == 3


def test_lost_answer__streamed_list_and_import_file(
    lossy: tuple[Client, DropsAnswers], tmp_path: Path
) -> None:
    client, transport = lossy
    # Past the JSON body limit a list is streamed as NDJSON, and encoded
    # again for the resend.
    job = client.items.bulk_create_job(data=_products(10_001), chunk_size=5000)
    client.jobs.wait(job, timeout=120)
    _one_job(client, job.id)

    path = tmp_path / "more.csv"
    path.write_text("name,sku\nA,X1\nB,X2\n")
    transport.drops = 1
    imported = client.items.import_job(path, type="product")
    assert client.jobs.wait(imported, timeout=60).attributes.status == "completed"
    assert len({j.id for j in client.jobs.list()}) == 2
    assert transport.keys[-1] == transport.keys[-2] != transport.keys[0]


def test_lost_answer__iterator_cannot_be_resent(
    lossy: tuple[Client, DropsAnswers],
) -> None:
    client, _transport = lossy
    with pytest.raises(TransportError) as caught:
        client.items.bulk_create_job(data=iter(_products(2)))
    key = caught.value.idempotency_key
    assert key is not None and key in str(caught.value)

    # Sent again by its caller with the key the error names: still one job.
    job = client.items.bulk_create_job(data=iter(_products(2)), idempotency_key=key)
    client.jobs.wait(job, timeout=60)
    _one_job(client, job.id)


def test_retry_with_fix(lossy: tuple[Client, DropsAnswers]) -> None:
    client, transport = lossy
    transport.drops = 0
    items = [*_products(2), {"item_type": "product", "sku": "S2"}, *_products(1, 3)]
    items[3]["price"] = -3
    parent = client.jobs.wait(client.items.bulk_create_job(data=items), timeout=60)
    assert parent.attributes.status == "completed_with_errors"
    seen: list[FailedItem] = []

    def fix(failed: FailedItem) -> dict[str, Any] | None:
        seen.append(failed)
        if failed.error.field == "name":
            return {**failed.input, "name": "P2"}
        return None  # left as it was: it fails again

    transport.drops = 1
    child = client.jobs.retry(parent, fix=fix)
    assert [f.index for f in seen] == [2, 3]
    assert seen[1].input == items[3] and seen[1].error.code
    assert child.attributes.parent_job_id == parent.id
    child = client.jobs.wait(child, timeout=60)
    result = child.attributes.result
    assert result is not None
    assert (result.successful_items, result.failed_items) == (1, 1)
    assert client.jobs.find(parent).attributes.retries == [child.id]

    with pytest.raises(Conflict) as caught:
        clean = client.jobs.wait(client.items.bulk_create_job(data=_products(1, 9)))
        client.jobs.retry(clean)
    assert caught.value.code == "no_failed_items"


def test_async_client__lost_answer_and_retry(server: Any) -> None:
    async def main() -> None:
        transport = AsyncDropsAnswers()
        async with AsyncClient(
            server.url, token=ADMIN_TOKEN, transport=transport
        ) as client:
            await client.item_types.create(
                api_key="product", name="Product", fields=PRODUCT_FIELDS
            )
            items = [*_products(2), {"item_type": "product", "sku": "S9"}]
            job = await client.items.bulk_create_job(data=items)
            assert transport.keys[0] == transport.keys[1]
            parent = await client.jobs.wait(job, timeout=60)
            assert [j.id for j in await client.jobs.list()] == [job.id]

            async def fix(failed: FailedItem) -> dict[str, Any]:
                return {**failed.input, "name": "named"}

            child = await client.jobs.retry(parent, fix=fix)
            child = await client.jobs.wait(child, timeout=60)
            assert child.attributes.status == "completed"
            assert child.attributes.parent_job_id == parent.id

    asyncio.run(main())
