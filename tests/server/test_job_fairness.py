"""Many jobs sharing the workers, through the HTTP API over a real socket:
turns between jobs, priority, and each token's limit of running jobs
(issue 4)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from lorry.config import Settings
from lorry.store import tokens
from tests.conftest import (
    ADMIN_TOKEN,
    FINAL,
    RunningServer,
    item_type_body,
    wait_job,
)

THING_FIELDS: list[dict[str, Any]] = [
    {"api_key": "name", "field_type": "string", "required": True},
    {"api_key": "n", "field_type": "integer"},
]


def _client(server: RunningServer, token: str = ADMIN_TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=120)


def _things(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"item_type": "thing", "name": f"T{i}", "n": i}
        for i in range(start, start + count)
    ]


def _start(api: httpx.Client, count: int, start: int = 0, **options: Any) -> str:
    body = {"data": _things(count, start), **options}
    response = api.post("/items/bulk-create-jobs", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["data"]["id"]
    return job_id


def _job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    response = api.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    attributes: dict[str, Any] = response.json()["data"]["attributes"]
    return attributes


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _typed_server(make_server: Callable[..., RunningServer], **settings: Any) -> Any:
    server = make_server(**settings)
    with _client(server) as api:
        response = api.post("/item-types", json=item_type_body("thing", THING_FIELDS))
        assert response.status_code == 201, response.text
    return server


def test_two_large_jobs__both_progress_before_either_ends(
    make_server: Callable[..., RunningServer],
) -> None:
    server = _typed_server(make_server, chunk_size=1000, txn_items=2000)
    with _client(server) as api:
        first = _start(api, 100_000)
        second = _start(api, 100_000, start=100_000)
        both_moving = False
        deadline = time.monotonic() + 300
        while True:
            a, b = _job(api, first), _job(api, second)
            if a["status"] in FINAL or b["status"] in FINAL:
                break
            if a["progress"] > 0 and b["progress"] > 0:
                both_moving = True
            assert time.monotonic() < deadline, (a, b)
            time.sleep(0.02)
        assert both_moving, "one job ran while the other waited"
        for job_id in (first, second):
            job = wait_job(api, job_id, timeout=300)
            assert job["attributes"]["status"] == "completed"
            assert job["attributes"]["result"]["successful_items"] == 100_000


def test_priority__higher_first_lower_after(
    make_server: Callable[..., RunningServer],
) -> None:
    server = _typed_server(make_server, chunk_size=100, txn_items=100)
    with _client(server) as api:
        usual = _start(api, 20_000)
        low = _start(api, 200, start=20_000, priority=-5)
        high = _start(api, 200, start=30_000, priority=5)
        ended = {
            j: wait_job(api, j, timeout=300)["attributes"] for j in (usual, low, high)
        }

    assert {a["status"] for a in ended.values()} == {"completed"}
    assert ended[high]["options"]["priority"] == 5
    assert ended[low]["options"]["priority"] == -5
    assert "priority" not in ended[usual]["options"]
    # The high one ran as soon as it came; the low one waited for the rest.
    assert _at(ended[high]["finished_at"]) < _at(ended[usual]["finished_at"])
    assert _at(ended[low]["started_at"]) >= _at(ended[usual]["finished_at"])


def test_token_limit__later_jobs_wait_queued_with_their_place(
    make_server: Callable[..., RunningServer],
) -> None:
    server = _typed_server(
        make_server, chunk_size=100, txn_items=100, max_running_jobs_per_token=1
    )
    with server.runtime.db.write() as conn:
        tokens.create(conn, "other", "editor", "other-secret")
    with _client(server) as api, _client(server, "other-secret") as other:
        running = _start(api, 20_000)
        second = _start(api, 100, start=20_000)
        third = _start(api, 100, start=30_000)
        # Another token's job is not held back by this token's jobs.
        theirs = wait_job(other, _start(other, 100, start=40_000))
        assert theirs["attributes"]["status"] == "completed"

        waiting = [_job(api, second), _job(api, third)]
        assert _job(api, running)["status"] == "in_progress"
        assert [w["status"] for w in waiting] == ["queued", "queued"]
        assert [w["details"]["queue_position"] for w in waiting] == [1, 2]
        assert waiting[0]["details"]["phase"] == "queued"

        ended = [wait_job(api, j, timeout=300)["attributes"] for j in (
            running, second, third
        )]  # fmt: skip
    assert [e["status"] for e in ended] == ["completed"] * 3
    assert "queue_position" not in ended[0]["details"]
    # One at a time: each started when the one before it ended.
    for before, after in itertools.pairwise(ended):
        assert _at(after["started_at"]) >= _at(before["finished_at"])


@pytest.mark.parametrize("value", [11, -11, 1.5, True, "high"])
def test_priority__bad_values_are_422_naming_the_option(
    api: httpx.Client, value: Any
) -> None:
    api.post("/item-types", json=item_type_body("thing", THING_FIELDS))
    api.post("/item-types", json=item_type_body("other", THING_FIELDS))
    bodies = {
        "/items/bulk-create-jobs": {"data": _things(1)},
        "/items/bulk-update-jobs": {"data": []},
        "/items/bulk-destroy-jobs": {"items": []},
        "/items/export-jobs": {},
        "/items/migrate-jobs": {"from": "thing", "to": "other"},
    }
    for path, body in bodies.items():
        response = api.post(path, json={**body, "priority": value})
        assert response.status_code == 422, (path, response.text)
        error = response.json()["errors"][0]
        assert error["code"] == "invalid_option"
        assert error["source"] == {"pointer": "/priority"}
        assert "priority must be a whole number from -10 to 10" in error["detail"]


def test_priority__in_an_import_query(api: httpx.Client) -> None:
    api.post("/item-types", json=item_type_body("thing", THING_FIELDS))
    headers = {"Content-Type": "text/csv"}
    bad = api.post(
        "/items/import-jobs",
        content=b"name,n\nA,1\n",
        params={"type": "thing", "priority": "urgent"},
        headers=headers,
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["errors"][0]["source"] == {"parameter": "priority"}

    good = api.post(
        "/items/import-jobs",
        content=b"name,n\nA,1\n",
        params={"type": "thing", "priority": "-3"},
        headers=headers,
    )
    assert good.status_code == 202, good.text
    job = wait_job(api, good.json()["data"]["id"])
    assert job["attributes"]["status"] == "completed"
    assert job["attributes"]["options"]["priority"] == -3


def test_token_limit__read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LORRY_MAX_RUNNING_JOBS_PER_TOKEN", raising=False)
    assert Settings.from_env().max_running_jobs_per_token == 4
    monkeypatch.setenv("LORRY_MAX_RUNNING_JOBS_PER_TOKEN", "0")
    assert Settings.from_env().max_running_jobs_per_token == 0
    monkeypatch.setenv("LORRY_MAX_RUNNING_JOBS_PER_TOKEN", "-1")
    with pytest.raises(ValueError, match="max_running_jobs_per_token"):
        Settings.from_env()
