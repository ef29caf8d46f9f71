"""Job control through the HTTP API: cancels, time-outs, unprocessed items."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from lorry.config import Settings
from lorry.jobs import export
from lorry.store import tokens
from tests.conftest import ADMIN_TOKEN, RunningServer, item_type_body, wait_job

NOTE_FIELDS = [{"api_key": "n", "field_type": "integer", "unique": True}]
#: Small chunks and claims, so that "within one chunk" is measurable.
SMALL = {"chunk_size": 200, "txn_items": 200}
TOTAL = 100_000


def _client(server: RunningServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=60,
    )


@pytest.fixture
def small(make_server: Callable[..., RunningServer]) -> Iterator[httpx.Client]:
    """A server whose workers claim 200 items at a time, with a note type."""
    with _client(make_server(**SMALL)) as api:
        _note_type(api)
        yield api


def _note_type(api: httpx.Client) -> None:
    response = api.post("/item-types", json=item_type_body("note", NOTE_FIELDS))
    assert response.status_code == 201, response.text


def _notes(count: int) -> list[dict[str, Any]]:
    return [{"item_type": "note", "n": n} for n in range(count)]


def _start(api: httpx.Client, count: int = TOTAL, **options: Any) -> str:
    body = {"data": _notes(count), **options}
    response = api.post("/items/bulk-create-jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["data"]["id"])


def _wait_started(api: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/jobs/{job_id}").json()["data"]
        if job["attributes"]["details"]["processed"]:
            return job
        time.sleep(0.005)
    raise AssertionError(f"job {job_id} did not start")


def _stored(api: httpx.Client) -> int:
    page = api.get("/items", params={"filter[type]": "note", "page[limit]": 1})
    return int(page.json()["meta"]["total_count"])


def _unprocessed(api: httpx.Client, job_id: str) -> list[Any]:
    response = api.get(f"/jobs/{job_id}/unprocessed")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.content.splitlines()]


def _assert_adds_up(
    api: httpx.Client, job: dict[str, Any], stored_before: int = 0
) -> list[Any]:
    """Applied, failed, skipped and unprocessed make the total; the items
    stored are the applied ones; the unprocessed input is what never ran."""
    result = job["attributes"]["result"]
    processed = result["processed_items"]
    assert processed == (
        result["successful_items"] + result["failed_items"] + result["skipped_items"]
    )
    assert processed + result["unprocessed_items"] == TOTAL
    assert _stored(api) == stored_before + result["successful_items"]
    rest = _unprocessed(api, job["id"])
    assert len(rest) == result["unprocessed_items"]
    # Chunks run in input order, so what never ran is the tail of the input.
    assert rest == _notes(TOTAL)[processed:]
    assert job["attributes"]["progress"] == 1
    return rest


def test_cancel__running_job_stops_within_one_chunk(small: httpx.Client) -> None:
    job_id = _start(small)
    _wait_started(small, job_id)

    response = small.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 200, response.text
    at_cancel = response.json()["data"]["attributes"]
    assert at_cancel["status"] == "cancelled"
    assert at_cancel["progress"] == 1
    assert at_cancel["finished_at"] is not None
    assert 0 < at_cancel["result"]["processed_items"] < TOTAL
    time.sleep(0.5)  # time for a worker that held a claim to try its write
    job = wait_job(small, job_id)
    applied_after = (
        job["attributes"]["result"]["processed_items"]
        - at_cancel["result"]["processed_items"]
    )
    assert 0 <= applied_after <= SMALL["txn_items"]
    assert job["attributes"]["status"] == "cancelled"
    assert job["attributes"]["error"] is None
    assert job["attributes"]["result"]["links"]["unprocessed"] == (
        f"/jobs/{job_id}/unprocessed"
    )
    _assert_adds_up(small, job)


def test_cancel__queued_job_applies_nothing(
    make_server: Callable[..., RunningServer],
) -> None:
    # No workers: the job stays queued until it is cancelled.
    with _client(make_server(workers=0)) as api:
        _note_type(api)
        job_id = _start(api)

        response = api.post(f"/jobs/{job_id}/cancel")

        assert response.status_code == 200, response.text
        job = response.json()["data"]
        assert job["attributes"]["status"] == "cancelled"
        assert job["attributes"]["started_at"] is None
        assert job["attributes"]["result"]["processed_items"] == 0
        assert job["attributes"]["result"]["unprocessed_items"] == TOTAL
        assert _assert_adds_up(api, job)[:2] == _notes(2)


def test_cancel__finished_job_is_409(small: httpx.Client) -> None:
    job_id = _start(small, 10)
    job = wait_job(small, job_id)
    assert job["attributes"]["status"] == "completed"

    response = small.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["code"] == "job_finished"
    assert "completed" in error["detail"]
    assert small.get(f"/jobs/{job_id}").json()["data"]["attributes"]["status"] == (
        "completed"
    )
    assert small.post(f"/jobs/{job_id}/cancel").status_code == 409


def test_cancel__unknown_job_is_404(small: httpx.Client) -> None:
    response = small.post("/jobs/01NOSUCHJOB/cancel")

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_cancel__needs_an_editor(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(workers=0)
    with server.runtime.db.write() as conn:
        tokens.create(conn, "reader", "reader", "reader-token")
    with _client(server) as api:
        _note_type(api)
        job_id = _start(api, 10)

        response = api.post(
            f"/jobs/{job_id}/cancel", headers={"Authorization": "Bearer reader-token"}
        )

        assert response.status_code == 403
        job = api.get(f"/jobs/{job_id}").json()["data"]
        assert job["attributes"]["status"] == "queued"


def test_unprocessed__of_a_running_job_is_409(
    make_server: Callable[..., RunningServer],
) -> None:
    with _client(make_server(workers=0)) as api:
        _note_type(api)
        job_id = _start(api, 10)

        response = api.get(f"/jobs/{job_id}/unprocessed")

        assert response.status_code == 409
        assert response.json()["errors"][0]["code"] == "job_active"


def test_unprocessed__of_a_completed_job_is_empty(small: httpx.Client) -> None:
    job = wait_job(small, _start(small, 10))

    assert job["attributes"]["result"]["unprocessed_items"] == 0
    assert _unprocessed(small, job["id"]) == []


def test_timeout__fails_the_job_with_the_remainder(small: httpx.Client) -> None:
    job_id = _start(small, timeout_seconds=0.3)

    job = wait_job(small, job_id)

    attributes = job["attributes"]
    assert attributes["status"] == "failed"
    assert attributes["error"]["code"] == "timeout"
    assert attributes["error"]["details"] == {"timeout_seconds": 0.3}
    assert attributes["options"]["timeout_seconds"] == 0.3
    assert attributes["result"]["unprocessed_items"] > 0
    _assert_adds_up(small, job)


def test_timeout__server_default_applies_to_jobs_that_set_none(
    make_server: Callable[..., RunningServer],
) -> None:
    with _client(make_server(job_timeout_seconds=0.2, **SMALL)) as api:
        _note_type(api)
        own = _start(api, 10, timeout_seconds=60)
        job = wait_job(api, _start(api))

        assert job["attributes"]["options"]["timeout_seconds"] == 0.2
        assert job["attributes"]["error"]["code"] == "timeout"
        # The first ten notes were the other job's: those of this one failed.
        assert job["attributes"]["result"]["failed_items"] == 10
        _assert_adds_up(api, job, stored_before=10)
        mine = wait_job(api, own)["attributes"]
        assert mine["options"]["timeout_seconds"] == 60
        assert mine["status"] == "completed"


def test_timeout__from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORRY_JOB_TIMEOUT_SECONDS", "90")
    assert Settings.from_env().job_timeout_seconds == 90
    monkeypatch.setenv("LORRY_JOB_TIMEOUT_SECONDS", "")
    assert Settings.from_env().job_timeout_seconds is None
    monkeypatch.setenv("LORRY_JOB_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ValueError, match="LORRY_JOB_TIMEOUT_SECONDS"):
        Settings.from_env()


@pytest.mark.parametrize("value", [0, -1, "soon", True, 10**9, None])
def test_timeout__invalid_values_are_422(small: httpx.Client, value: Any) -> None:
    body: dict[str, Any] = {"data": _notes(1), "timeout_seconds": value}

    response = small.post("/items/bulk-create-jobs", json=body)

    if value is None:  # the same as not saying
        assert response.status_code == 202, response.text
        return
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "invalid_option"
    assert error["source"] == {"pointer": "/timeout_seconds"}


def test_timeout__taken_by_every_kind_of_job(small: httpx.Client) -> None:
    created = wait_job(small, _start(small, 4))
    ids = [item["id"] for item in created["attributes"]["result"]["data"]]
    other = small.post("/item-types", json=item_type_body("memo", NOTE_FIELDS))
    assert other.status_code == 201, other.text
    requests = [
        small.post(
            "/items/bulk-update-jobs",
            json={
                "data": [{"id": ids[0], "attributes": {"n": 100}}],
                "timeout_seconds": 60,
            },
        ),
        small.post(
            "/items/import-jobs",
            params={"type": "note", "timeout_seconds": "60"},
            content=b'{"n": 200}\n',
            headers={"Content-Type": "application/x-ndjson"},
        ),
        small.post("/items/export-jobs", json={"timeout_seconds": 60}),
        small.post(
            "/items/migrate-jobs",
            json={"from": "note", "to": "memo", "timeout_seconds": 60},
        ),
        small.post(
            "/items/bulk-destroy-jobs", json={"items": [ids[1]], "timeout_seconds": 60}
        ),
    ]
    for response in requests:
        assert response.status_code == 202, response.text
        job = wait_job(small, response.json()["data"]["id"])
        assert job["attributes"]["options"]["timeout_seconds"] == 60
        assert job["attributes"]["status"] == "completed", job

    bad = small.post(
        "/items/import-jobs",
        params={"type": "note", "timeout_seconds": "later"},
        content=b'{"n": 300}\n',
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["source"] == {"parameter": "timeout_seconds"}
    bad = small.post("/items/export-jobs", json={"timeout_seconds": 0})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["source"] == {"pointer": "/timeout_seconds"}


def _slow_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each batch of 10 rows reports progress, and so looks for a cancel.
    monkeypatch.setattr(export, "BATCH_ROWS", 10)
    monkeypatch.setattr(export, "PROGRESS_SECONDS", 0.0)


def test_cancel__running_export_stops_and_leaves_no_file(
    make_server: Callable[..., RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    with _client(server) as api:
        _note_type(api)
        assert wait_job(api, _start(api, 20_000))["attributes"]["status"] == (
            "completed"
        )
        _slow_exports(monkeypatch)
        response = api.post("/items/export-jobs", json={"format": "ndjson"})
        job_id = response.json()["data"]["id"]
        _wait_started(api, job_id)

        cancelled = api.post(f"/jobs/{job_id}/cancel")

        assert cancelled.status_code == 200, cancelled.text
        job = wait_job(api, job_id)
        assert job["attributes"]["status"] == "cancelled"
        assert job["attributes"]["result"]["url"] is None
        exports_dir = server.runtime.settings.exports_dir
        deadline = time.monotonic() + 10
        while list(exports_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)  # the worker removes its file once it sees the end
        assert list(exports_dir.iterdir()) == []
        assert api.get(f"/jobs/{job_id}/unprocessed").content == b""


def test_timeout__of_an_export(
    make_server: Callable[..., RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    with _client(server) as api:
        _note_type(api)
        wait_job(api, _start(api, 20_000))
        _slow_exports(monkeypatch)
        response = api.post(
            "/items/export-jobs", json={"format": "csv", "timeout_seconds": 0.2}
        )

        job = wait_job(api, response.json()["data"]["id"])

        assert job["attributes"]["status"] == "failed"
        assert job["attributes"]["error"]["code"] == "timeout"
        assert list(server.runtime.settings.exports_dir.iterdir()) == []


def test_timeout__of_an_atomic_job_applies_nothing(small: httpx.Client) -> None:
    # The whole job is one claim: a time-out that has passed when it comes to
    # be written fails it there, and nothing of it is applied.
    job_id = _start(small, 5_000, timeout_seconds=0.001, atomic=True)

    job = wait_job(small, job_id)

    assert job["attributes"]["status"] == "failed"
    assert job["attributes"]["error"]["code"] == "timeout"
    assert _stored(small) == 0
