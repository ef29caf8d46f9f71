"""The Python client against a real server on a real socket."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lorry import AsyncClient, Client
from lorry.client import (
    Conflict,
    ExportChecksumError,
    JobWaitTimeout,
    LorryError,
    NotFound,
    UnprocessableEntity,
)
from tests.conftest import ADMIN_TOKEN, PRODUCT_FIELDS


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, token=ADMIN_TOKEN) as c:
        c.item_types.create(api_key="product", name="Product", fields=PRODUCT_FIELDS)
        yield c


def _items(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + n):
        yield {"item_type": "product", "name": f"P{i}", "sku": f"S{i}", "stock": i}


def test_streamed_job_with_progress_and_results(client: Client) -> None:
    seen: list[float] = []
    job = client.items.bulk_create_job(data=_items(12_000), chunk_size=500)
    assert job.attributes.status in ("queued", "in_progress", "completed")
    done = client.jobs.wait(
        job.id, on_progress=lambda j: seen.append(j.attributes.progress), timeout=60
    )
    assert done.attributes.status == "completed"
    assert done.attributes.result is not None
    assert done.attributes.result.processed_items == 12_000
    assert seen == sorted(seen) and seen[-1] == 1
    assert sum(1 for _ in client.jobs.iter_data(done.id)) == 12_000
    assert client.items.list(filter={"type": "product"}, page={"limit": 1}).total_count
    skus = [i["sku"] for i in client.items.iter(filter={"type": "product"})]
    assert len(skus) == len(set(skus)) == 12_000


def test_errors_and_filters(client: Client) -> None:
    items = [*list(_items(5)), {"item_type": "product", "name": "x"}]
    job = client.jobs.wait(client.items.bulk_create_job(data=items).id, timeout=60)
    result = job.attributes.result
    assert result is not None
    assert job.attributes.status == "completed_with_errors"
    assert [(e.index, e.code, e.field) for e in result.errors] == [
        (5, "required", "sku")
    ]
    assert result.failed_items_data == [{"item_type": "product", "name": "x"}]

    page = client.items.list(
        filter={"type": "product", "fields": {"stock": {"in": [1, 3]}}},
        order_by="-stock",
    )
    assert [i["sku"] for i in page] == ["S3", "S1"]
    with pytest.raises(NotFound):
        client.items.find("01AAAAAAAAAAAAAAAAAAAAAAAA")
    with pytest.raises(UnprocessableEntity) as info:
        client.items.create({"item_type": "product", "name": "no sku"})
    assert info.value.errors[0].code == "required"

    ids = [i["id"] for i in client.items.iter(filter={"type": "product"})]
    updated = client.jobs.wait(
        client.items.bulk_update_job(
            data=[{"id": ids[0], "attributes": {"stock": 99}}]
        ).id
    )
    assert updated.attributes.status == "completed"
    assert client.items.find(ids[0])["stock"] == 99
    missing = "01AAAAAAAAAAAAAAAAAAAAAAAA"
    gone = client.jobs.wait(client.items.bulk_destroy_job(items=[*ids[1:], missing]).id)
    assert gone.attributes.result is not None
    assert gone.attributes.result.successful_items == 4
    # The input of a failed destroy is the bare id: not an object.
    assert gone.attributes.result.failed_items_data == [missing]
    assert [e.id for e in gone.attributes.result.errors] == [missing]
    assert list(client.jobs.failed_items(gone.id)) == [missing]


def test_wait_times_out_without_cancelling(make_server: Any) -> None:
    idle = make_server(workers=0)  # nobody runs the job
    with Client(idle.url, token=ADMIN_TOKEN) as c:
        c.item_types.create(api_key="product", name="Product", fields=PRODUCT_FIELDS)
        job = c.items.bulk_create_job(data=list(_items(3)))
        with pytest.raises(JobWaitTimeout) as info:
            c.jobs.wait(job.id, timeout=0.3)
        assert info.value.job.attributes.status == "queued"
        assert c.jobs.find(job.id).attributes.status == "queued"
        # Still there to cancel: the wait's time-out left it alone.
        assert c.jobs.cancel(job).attributes.status == "cancelled"


def test_cancel_and_unprocessed__sync(make_server: Any) -> None:
    idle = make_server(workers=0)
    with Client(idle.url, token=ADMIN_TOKEN) as c:
        c.item_types.create(api_key="product", name="Product", fields=PRODUCT_FIELDS)
        job = c.items.bulk_create_job(data=list(_items(3)), timeout_seconds=30)
        assert job.attributes.options["timeout_seconds"] == 30

        cancelled = c.jobs.cancel(job.id)

        assert cancelled.attributes.status == "cancelled"
        assert cancelled.attributes.progress == 1
        assert cancelled.attributes.result is not None
        assert cancelled.attributes.result.unprocessed_items == 3
        assert c.jobs.unprocessed(job) == list(_items(3))
        with pytest.raises(Conflict) as info:
            c.jobs.cancel(job)
        assert info.value.errors[0].code == "job_finished"


def test_cancel_and_timeout__async(make_server: Any) -> None:
    idle = make_server(workers=0)

    async def scenario() -> tuple[str, list[Any], str, Any]:
        async with AsyncClient(idle.url, token=ADMIN_TOKEN) as c:
            await c.item_types.create(
                api_key="product", name="Product", fields=PRODUCT_FIELDS
            )
            job = await c.items.bulk_create_job(data=list(_items(2)))
            cancelled = await c.jobs.cancel(job)
            rest = await c.jobs.unprocessed(job.id)
            export = await c.items.export_job(timeout_seconds=5)
            ended = await c.jobs.cancel(export)
            return (
                cancelled.attributes.status,
                rest,
                ended.attributes.status,
                export.attributes.options["timeout_seconds"],
            )

    assert asyncio.run(scenario()) == ("cancelled", list(_items(2)), "cancelled", 5)


def test_async_client(server: Any) -> None:
    async def scenario() -> tuple[str, int]:
        async with AsyncClient(server.url, token=ADMIN_TOKEN) as c:
            await c.item_types.create(
                api_key="product", name="Product", fields=PRODUCT_FIELDS
            )
            job = await c.items.bulk_create_job(data=list(_items(50)))
            done = await c.jobs.wait(job.id, timeout=60)
            page = await c.items.list(filter={"type": "product"})
            return done.attributes.status, page.total_count or 0

    assert asyncio.run(scenario()) == ("completed", 50)


_ARTICLE = [{"api_key": "title", "field_type": "string", "required": True}]
_POST = [{"api_key": "headline", "field_type": "string", "required": True}]


def test_migrate_job__sync_and_async(server: Any) -> None:
    with Client(server.url, token=ADMIN_TOKEN) as c:
        c.item_types.create(api_key="article", name="Article", fields=_ARTICLE)
        c.item_types.create(api_key="post", name="Post", fields=_POST)
        rows = [{"item_type": "article", "title": f"T{i}"} for i in range(4)]
        c.jobs.wait(c.items.bulk_create_job(data=rows).id, timeout=60)
        dry = c.jobs.wait(
            c.items.migrate_job(
                from_type="article",
                to_type="post",
                mapping={"title": "headline"},
                dry_run=True,
            ).id,
            timeout=60,
        )
        assert dry.attributes.details.would_create == 4
        assert dry.attributes.details.sample is not None
        assert dry.attributes.details.sample[0]["headline"] == "T0"
        assert dry.attributes.details.field_map == {"title": "headline"}

    async def scenario() -> tuple[str, int, int]:
        async with AsyncClient(server.url, token=ADMIN_TOKEN) as c:
            job = await c.items.migrate_job(
                from_type="article",
                to_type="post",
                mapping={"title": "headline"},
                delete_source=True,
            )
            done = await c.jobs.wait(job.id, timeout=60)
            posts = await c.items.list(filter={"type": "post"})
            articles = await c.items.list(filter={"type": "article"})
            return (
                done.attributes.status,
                posts.total_count or 0,
                articles.total_count or 0,
            )

    assert asyncio.run(scenario()) == ("completed", 4, 0)


def test_export_job_and_download__checked_against_the_sha256(
    client: Client, tmp_path: Path
) -> None:
    client.jobs.wait(client.items.bulk_create_job(data=list(_items(40))), timeout=60)

    job = client.items.export_job(
        filter={"type": "product"},
        format="ndjson",
        fields=["sku"],
        order_by="sku",
        url_ttl=1,
    )
    job = client.jobs.wait(job, timeout=60)
    result = job.attributes.result
    assert result is not None and result.url is not None
    assert (result.format, result.item_count) == ("ndjson", 40)

    path = client.exports.download(job.id, tmp_path / "out.ndjson")
    body = path.read_bytes()
    assert hashlib.sha256(body).hexdigest() == result.sha256
    assert len(body) == result.size
    assert json.loads(body.splitlines()[0])["sku"] == "S0"

    time.sleep(1.1)  # the link expires; download signs a fresh one
    seen: list[int] = []
    again = client.exports.download(
        job, tmp_path / "again.ndjson", on_download=seen.append
    )
    assert again.read_bytes() == body and seen[-1] == len(body)
    link = client.exports.url(job, url_ttl=60)
    assert link.url != result.url


def test_export_download__a_bad_checksum_keeps_nothing(
    client: Client, tmp_path: Path
) -> None:
    job = client.jobs.wait(client.items.export_job(format="csv"), timeout=60)
    assert job.attributes.result is not None
    forged = msgspec.structs.replace(
        job,
        attributes=msgspec.structs.replace(
            job.attributes,
            result=msgspec.structs.replace(job.attributes.result, sha256="0" * 64),
        ),
    )

    target = tmp_path / "downloads"
    target.mkdir()
    with pytest.raises(ExportChecksumError):
        client.exports.download(forged, target / "out.csv")
    assert list(target.iterdir()) == []
    other = client.jobs.wait(client.items.bulk_create_job(data=list(_items(1))))
    with pytest.raises(LorryError, match="not an export"):
        client.exports.download(other, target / "x")


def test_async_export_job_and_download(server: Any, tmp_path: Path) -> None:
    async def scenario() -> bytes:
        async with AsyncClient(server.url, token=ADMIN_TOKEN) as c:
            await c.item_types.create(
                api_key="product", name="Product", fields=PRODUCT_FIELDS
            )
            await c.jobs.wait(
                await c.items.bulk_create_job(data=list(_items(5))), timeout=60
            )
            job = await c.items.export_job(
                filter={"type": "product"}, format="json", include_relationships=True
            )
            job = await c.jobs.wait(job, timeout=60)
            path = await c.exports.download(job, tmp_path / "out.json")
            link = await c.exports.url(job)
            assert link.expires_at
            return path.read_bytes()

    assert len(json.loads(asyncio.run(scenario()))) == 5
