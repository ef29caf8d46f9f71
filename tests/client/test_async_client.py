import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from lorry import AsyncClient
from lorry.client import Job, JobWaitTimeout, NotFound, TransportError


def test_async_item_types_create(
    async_client_for: Callable[..., tuple[AsyncClient, Any]],
    item_type: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = async_client_for(
        lambda request: httpx.Response(201, json={"data": item_type()})
    )

    async def run() -> str:
        async with client:
            created = await client.item_types.create(api_key="product", name="P")
        return created.attributes.api_key

    assert asyncio.run(run()) == "product"
    assert recorder.last.headers["Authorization"] == "Bearer s3cret-token"
    assert json.loads(recorder.last.content)["data"]["attributes"] == {
        "api_key": "product",
        "name": "P",
        "fields": [],
    }


def test_async_items_iter_walks_every_page(
    async_client_for: Callable[..., tuple[AsyncClient, Any]],
) -> None:
    items = [{"id": str(n), "item_type": "product"} for n in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["page[offset]"])
        end = offset + 2
        next_url = f"/items?page%5Boffset%5D={end}" if end < 5 else None
        body = {"data": items[offset:end], "links": {"next": next_url}}
        return httpx.Response(200, json=body)

    client, recorder = async_client_for(handler)

    async def run() -> list[dict[str, Any]]:
        async with client:
            return [item async for item in client.items.iter(page_size=2)]

    assert asyncio.run(run()) == items
    assert [r.url.params["page[offset]"] for r in recorder.requests] == ["0", "2", "4"]


@pytest.mark.parametrize("source", ["list", "sync_generator", "async_generator"])
def test_async_bulk_create(
    async_client_for: Callable[..., tuple[AsyncClient, Any]],
    job: Callable[..., dict[str, Any]],
    source: str,
) -> None:
    client, recorder = async_client_for(
        lambda request: httpx.Response(202, json={"data": job()})
    )
    items = [{"item_type": "product", "sku": str(n)} for n in range(1_500)]

    async def agen() -> AsyncIterator[dict[str, Any]]:
        for item in items:
            yield item

    data: Any = {
        "list": items,
        "sync_generator": (item for item in items),
        "async_generator": agen(),
    }[source]
    uploaded: list[int] = []

    async def run() -> Job:
        async with client:
            return await client.items.bulk_create_job(
                data=data, skip_duplicates=True, on_upload=uploaded.append
            )

    created = asyncio.run(run())

    request = recorder.last
    assert created.id == "01JOB"
    assert uploaded[-1] == len(request.content)
    if source == "list":
        assert request.headers["Content-Type"] == "application/json"
        assert json.loads(request.content)["data"] == items
    else:
        assert request.headers["Content-Type"] == "application/x-ndjson"
        assert request.url.params.multi_items() == [("skip_duplicates", "true")]
        lines = request.content.splitlines()
        assert [json.loads(line) for line in lines] == items
        assert len(uploaded) == 2


def test_async_wait_reports_progress_and_times_out(
    async_client_for: Callable[..., tuple[AsyncClient, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    states = [
        job(status="queued"),
        job(status="in_progress", progress=0.5),
        job(status="completed", progress=1),
    ]
    client, _ = async_client_for(
        lambda request: httpx.Response(200, json={"data": states.pop(0)})
    )
    seen: list[str] = []

    async def run() -> Job:
        async with client:
            return await client.jobs.wait(
                "01JOB", on_progress=lambda j: seen.append(j.attributes.status)
            )

    assert asyncio.run(run()).attributes.status == "completed"
    assert seen == ["queued", "in_progress", "completed"]

    stuck, _ = async_client_for(
        lambda request: httpx.Response(200, json={"data": job(status="in_progress")})
    )

    async def run_stuck() -> None:
        async with stuck:
            await stuck.jobs.wait("01JOB", timeout=0.1)

    with pytest.raises(JobWaitTimeout) as caught:
        asyncio.run(run_stuck())
    assert caught.value.job.attributes.status == "in_progress"


def test_async_errors_are_typed(
    async_client_for: Callable[..., tuple[AsyncClient, Any]],
) -> None:
    body = {"errors": [{"status": "404", "code": "not_found", "detail": "no job"}]}
    missing, _ = async_client_for(lambda request: httpx.Response(404, json=body))

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down, _ = async_client_for(refuse)

    async def find(client: AsyncClient) -> None:
        async with client:
            await client.jobs.find("01JOB")

    with pytest.raises(NotFound, match="no job"):
        asyncio.run(find(missing))
    with pytest.raises(TransportError, match="cannot reach server"):
        asyncio.run(find(down))
