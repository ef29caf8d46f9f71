import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from lorry import Client
from lorry.client import _wire


def _accepted(job: Callable[..., dict[str, Any]]) -> Callable[..., httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            202, json={"data": job("01JOB")}, headers={"Location": "/jobs/01JOB"}
        )

    return handler


def _ndjson(content: bytes) -> list[Any]:
    assert content.endswith(b"\n")
    return [json.loads(line) for line in content.splitlines()]


def test_bulk_create__small_list_goes_as_json_body(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(_accepted(job))
    items = [{"item_type": "product", "sku": f"S{n}"} for n in range(3)]
    uploaded: list[int] = []

    created = client.items.bulk_create_job(
        data=items,
        skip_duplicates=True,
        link_by={"category": "code"},
        chunk_size=500,
        on_upload=uploaded.append,
    )

    request = recorder.last
    assert (request.method, request.url.path) == ("POST", "/items/bulk-create-jobs")
    assert request.url.query == b""
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer s3cret-token"
    assert json.loads(request.content) == {
        "data": items,
        "skip_duplicates": True,
        "link_by": {"category": "code"},
        "chunk_size": 500,
    }
    assert uploaded == [len(request.content)]
    assert created.id == "01JOB"
    assert created.attributes.status == "queued"


def test_bulk_create__default_options_in_json_body(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(_accepted(job))

    client.items.bulk_create_job(data=[{"item_type": "product"}])

    assert json.loads(recorder.last.content) == {
        "data": [{"item_type": "product"}],
        "skip_duplicates": False,
    }


def test_bulk_create__generator_is_streamed_as_ndjson_with_query_options(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(_accepted(job))
    count = 2_345
    pulled = 0

    def items() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for n in range(count):
            pulled += 1
            yield {"item_type": "rating", "movie": n, "rating": 4.5}

    uploaded: list[int] = []
    client.items.bulk_create_job(
        data=items(),
        skip_duplicates=True,
        link_by={"movie": "movie_id"},
        chunk_size=1000,
        on_upload=uploaded.append,
    )

    request = recorder.last
    assert request.headers["Content-Type"] == "application/x-ndjson"
    assert request.url.params.multi_items() == [
        ("skip_duplicates", "true"),
        ("link_by[movie]", "movie_id"),
        ("chunk_size", "1000"),
    ]
    received = _ndjson(request.content)
    assert [item["movie"] for item in received] == list(range(count))
    assert pulled == count
    # One chunk per batch of items, and the totals add up to the whole body.
    assert len(uploaded) == 3
    assert uploaded == sorted(uploaded)
    assert uploaded[-1] == len(request.content)


def test_bulk_create__list_over_the_json_limit_is_streamed(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(_accepted(job))
    items = [{"item_type": "product", "sku": str(n)} for n in range(10_001)]

    client.items.bulk_create_job(data=items)

    assert recorder.last.headers["Content-Type"] == "application/x-ndjson"
    assert recorder.last.url.query == b""
    assert [item["sku"] for item in _ndjson(recorder.last.content)] == [
        str(n) for n in range(10_001)
    ]


def test_bulk_create__list_at_the_json_limit_is_one_json_body(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(_accepted(job))
    items = [{"item_type": "product", "sku": str(n)} for n in range(10_000)]

    client.items.bulk_create_job(data=items)

    assert recorder.last.headers["Content-Type"] == "application/json"
    assert len(json.loads(recorder.last.content)["data"]) == 10_000


def test_bulk_update__json_and_streamed(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(_accepted(job))
    changes = [{"id": "01A", "attributes": {"price": 3}, "meta": {"version": 2}}]

    client.items.bulk_update_job(data=changes)
    client.items.bulk_update_job(data=iter(changes))

    as_json, streamed = recorder.requests
    assert as_json.url.path == streamed.url.path == "/items/bulk-update-jobs"
    assert json.loads(as_json.content) == {"data": changes}
    assert streamed.headers["Content-Type"] == "application/x-ndjson"
    assert _ndjson(streamed.content) == changes


def test_bulk_destroy__sends_item_ids(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(_accepted(job))

    client.items.bulk_destroy_job(items=(i for i in ["01A", "01B"]))

    assert recorder.last.url.path == "/items/bulk-destroy-jobs"
    assert json.loads(recorder.last.content) == {"items": ["01A", "01B"]}


def test_iter_ndjson__pulls_items_one_batch_at_a_time() -> None:
    pulled = 0

    def items() -> Iterator[dict[str, int]]:
        nonlocal pulled
        for n in range(2_500):
            pulled += 1
            yield {"n": n}

    chunks = _wire.iter_ndjson(items())
    first = next(chunks)

    assert pulled == _wire.NDJSON_BATCH
    assert first.count(b"\n") == _wire.NDJSON_BATCH
    assert [len(chunk.splitlines()) for chunk in chunks] == [1000, 500]


def test_sync_client_refuses_an_async_iterable(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(_accepted(job))

    async def items() -> AsyncIterator[dict[str, Any]]:
        yield {"item_type": "product"}

    with pytest.raises(TypeError, match="AsyncClient"):
        client.items.bulk_create_job(data=items())  # type: ignore[arg-type]
    assert recorder.requests == []


def test_migrate_job__sends_the_options_as_one_json_body(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    client, recorder = client_for(_accepted(job))

    started = client.items.migrate_job(
        from_type="article",
        to_type="post",
        mapping={"title": "headline", "legacy": None},
        constants={"kind": "news"},
        filter={"fields": {"status": {"eq": "published"}}},
        delete_source=True,
        chunk_size=200,
    )

    assert started.id == "01JOB"
    request = recorder.last
    assert (request.method, request.url.path) == ("POST", "/items/migrate-jobs")
    assert json.loads(request.content) == {
        "from": "article",
        "to": "post",
        "mapping": {"title": "headline", "legacy": None},
        "constants": {"kind": "news"},
        "filter": {"fields": {"status": {"eq": "published"}}},
        "delete_source": True,
        "dry_run": False,
        "chunk_size": 200,
    }


def test_every_job_method__sends_timeout_seconds(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
    tmp_path: Any,
) -> None:
    client, recorder = client_for(_accepted(job))
    source = tmp_path / "notes.ndjson"
    source.write_bytes(b'{"n": 1}\n')

    client.items.bulk_create_job(data=iter([{"item_type": "note"}]), timeout_seconds=9)
    streamed = recorder.last.url.params.multi_items()
    client.items.bulk_update_job(data=[{"id": "01A"}], timeout_seconds=9)
    update = json.loads(recorder.last.content)
    client.items.bulk_destroy_job(["01A"], timeout_seconds=9)
    destroy = json.loads(recorder.last.content)
    client.items.migrate_job(from_type="a", to_type="b", timeout_seconds=9)
    migrate = json.loads(recorder.last.content)
    client.items.export_job(timeout_seconds=0.5)
    export = json.loads(recorder.last.content)
    client.items.import_job(source, type="note", timeout_seconds=9)
    imported = recorder.last.url.params.multi_items()

    assert ("timeout_seconds", "9") in streamed
    assert ("timeout_seconds", "9") in imported
    for body in (update, destroy, migrate):
        assert body["timeout_seconds"] == 9
    assert export["timeout_seconds"] == 0.5
