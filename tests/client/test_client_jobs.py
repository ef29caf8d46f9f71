from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lorry import Client
from lorry.client import Job, JobAttributes, JobItemError, JobWaitTimeout, _wire

RESULT = {
    "processed_items": 3,
    "successful_items": 2,
    "failed_items": 1,
    "skipped_items": 0,
    "data": [{"id": "01A", "item_type": "product", "meta": {"index": 0}}],
    "errors": [
        {"index": 2, "id": None, "code": "not_unique", "field": "sku", "message": "x"}
    ],
    "failed_items_data": [{"item_type": "product", "sku": "A"}],
    "truncated": {"data": False, "errors": False},
    "links": {"errors": "/jobs/01JOB/errors"},
}


def test_find__decodes_the_job(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    payload = job(
        status="completed_with_errors",
        progress=1,
        details={"phase": "finished", "total": 3, "processed": 3, "eta_seconds": 0},
        result=RESULT,
    )
    client, recorder = client_for(
        lambda request: httpx.Response(200, json={"data": payload})
    )

    found = client.jobs.find("01JOB")

    assert recorder.last.url.path == "/jobs/01JOB"
    assert found.is_finished
    assert found.attributes.details.total == 3
    assert found.attributes.result is not None
    assert found.attributes.result.failed_items == 1
    assert found.attributes.result.errors == [
        JobItemError(index=2, id=None, code="not_unique", field="sku", message="x")
    ]
    assert found.attributes.result.failed_items_data == [
        {"item_type": "product", "sku": "A"}
    ]


def test_list__filters_by_status_and_kind(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    body = {"data": [job("01A"), job("01B")], "meta": {"total_count": 2}}
    client, recorder = client_for(lambda request: httpx.Response(200, json=body))

    jobs = client.jobs.list(
        filter={"status": "completed", "kind": ["bulk_create", "bulk_update"]},
        page={"limit": 10},
    )

    assert recorder.last.url.params.multi_items() == [
        ("filter[status]", "completed"),
        ("filter[kind]", "bulk_create,bulk_update"),
        ("page[limit]", "10"),
    ]
    assert [j.id for j in jobs] == ["01A", "01B"]


def test_wait__reports_each_change_and_returns_the_final_job(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    states = [
        job(status="queued"),
        job(status="in_progress", progress=0.5, details={"processed": 5}),
        job(status="in_progress", progress=0.5, details={"processed": 5}),
        job(status="completed_with_errors", progress=1, result=RESULT),
    ]
    client, recorder = client_for(
        lambda request: httpx.Response(200, json={"data": states.pop(0)})
    )
    seen: list[Job] = []

    final = client.jobs.wait("01JOB", on_progress=seen.append, timeout=10)

    assert [(j.attributes.status, j.attributes.progress) for j in seen] == [
        ("queued", 0.0),
        ("in_progress", 0.5),
        ("completed_with_errors", 1.0),
    ]
    assert final.attributes.result is not None
    assert final.attributes.result.failed_items == 1
    assert len(recorder.requests) == 4
    assert {r.method for r in recorder.requests} == {"GET"}


def test_wait__timeout_raises_with_the_last_job_and_never_cancels(
    client_for: Callable[..., tuple[Client, Any]],
    job: Callable[..., dict[str, Any]],
) -> None:
    running = job(status="in_progress", progress=0.3)
    client, recorder = client_for(
        lambda request: httpx.Response(200, json={"data": running})
    )

    with pytest.raises(JobWaitTimeout) as caught:
        client.jobs.wait("01JOB", timeout=0.15)

    assert caught.value.job.attributes.status == "in_progress"
    assert caught.value.job.attributes.progress == 0.3
    assert "01JOB" in str(caught.value)
    assert len(recorder.requests) >= 2
    assert {(r.method, r.url.path) for r in recorder.requests} == {
        ("GET", "/jobs/01JOB")
    }


def test_wait_loop__backs_off_from_50ms_to_1s() -> None:
    loop = _wire.WaitLoop(None, None, timeout=None)
    job = _job("in_progress")

    delays = [loop.observe(job) or 0.0 for _ in range(12)]

    assert delays[0] == pytest.approx(0.05)
    assert delays == sorted(delays)
    assert delays[-1] == pytest.approx(1.0)
    assert loop.observe(_job("completed")) is None


def test_wait_loop__never_sleeps_past_the_deadline() -> None:
    loop = _wire.WaitLoop(None, None, timeout=0.01)

    delay = loop.observe(_job("queued"))

    assert delay is not None
    assert delay <= 0.01


def _job(status: str) -> Job:
    return Job(id="01JOB", attributes=JobAttributes(kind="bulk_create", status=status))


def test_iter_errors_data_and_failed_items__walk_every_page(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    entries: dict[str, list[dict[str, Any]]] = {
        "errors": [{"index": n, "code": "required", "field": "sku"} for n in range(5)],
        "data": [{"id": f"01{n}", "meta": {"index": n}} for n in range(5)],
        "failed-items": [{"item_type": "product", "n": n} for n in range(5)],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        which = request.url.path.rsplit("/", 1)[1]
        limit = int(request.url.params["page[limit]"])
        offset = int(request.url.params["page[offset]"])
        body = {
            "data": entries[which][offset : offset + limit],
            "meta": {"total_count": 5},
        }
        return httpx.Response(200, json=body)

    client, recorder = client_for(handler)

    errors = list(client.jobs.iter_errors("01JOB", page_size=2))
    data = list(client.jobs.iter_data("01JOB", page_size=2))
    failed = list(client.jobs.failed_items("01JOB", page_size=2))

    assert [e.index for e in errors] == [0, 1, 2, 3, 4]
    assert all(isinstance(e, JobItemError) and e.code == "required" for e in errors)
    assert data == entries["data"]
    assert failed == entries["failed-items"]
    # Three pages each: 2 + 2 + 1, and the count says when to stop.
    assert [r.url.path for r in recorder.requests[:3]] == ["/jobs/01JOB/errors"] * 3
    assert len(recorder.requests) == 9
