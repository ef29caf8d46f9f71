"""Job control through the HTTP API over a real socket: atomic jobs, error
budgets, retention, removal and purge (issue 4)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from lorry.cli import app
from lorry.store.tables import job_chunks, job_errors, jobs, migrated_items
from tests.conftest import (
    ADMIN_TOKEN,
    PRODUCT_FIELDS,
    RunningServer,
    bulk_create,
    item_type_body,
    wait_job,
)

OFFER_FIELDS: list[dict[str, Any]] = [
    {"api_key": "name", "field_type": "string", "required": True},
    {"api_key": "sku", "field_type": "string"},
]


def _product(i: int, **extra: Any) -> dict[str, Any]:
    return {"item_type": "product", "name": f"P{i}", "sku": f"S-{i}", **extra}


def _listing(api: httpx.Client) -> list[dict[str, Any]]:
    """Every item, as the API lists them: ids, values, versions, timestamps."""
    page = api.get("/items", params={"page[limit]": 500, "order_by": "id"})
    assert page.status_code == 200, page.text
    data: list[dict[str, Any]] = page.json()["data"]
    assert page.json()["meta"]["total_count"] == len(data)
    return data


def _start(api: httpx.Client, path: str, body: dict[str, Any]) -> str:
    response = api.post(path, json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["data"]["id"]
    return job_id


def _run(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return wait_job(api, _start(api, path, body))


def _error_indexes(api: httpx.Client, job_id: str) -> list[int]:
    page = api.get(f"/jobs/{job_id}/errors", params={"page[limit]": 1000}).json()
    return [e["index"] for e in page["data"]]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _rows_of(server: RunningServer, job_id: str) -> dict[str, int]:
    """How many rows each job table holds for a job."""
    with server.runtime.db.read() as conn:
        counts = {
            table.name: conn.execute(
                sa.select(sa.func.count()).where(table.c.job_id == job_id)
            ).scalar_one()
            for table in (job_chunks, job_errors, migrated_items)
        }
        counts["jobs"] = conn.execute(
            sa.select(sa.func.count()).where(jobs.c.id == job_id)
        ).scalar_one()
    return counts


def _chunk_statuses(server: RunningServer, job_id: str) -> list[str]:
    with server.runtime.db.read() as conn:
        return list(
            conn.execute(
                sa.select(job_chunks.c.status)
                .where(job_chunks.c.job_id == job_id)
                .order_by(job_chunks.c.seq)
            ).scalars()
        )


# Atomic jobs


def test_atomic_create__a_bad_item_in_the_last_chunk_changes_nothing(
    api: httpx.Client, product_type: Any
) -> None:
    bulk_create(api, [_product(i) for i in range(5)])
    before = _listing(api)
    items = [_product(i) for i in range(100, 150)]
    items[3]["price"] = -1  # first chunk
    items[45]["sku"] = ""  # last chunk
    items[48]["stock"] = "many"  # last chunk

    job = _run(
        api,
        "/items/bulk-create-jobs",
        {"data": items, "atomic": True, "chunk_size": 10},
    )

    attrs = job["attributes"]
    assert attrs["status"] == "failed"
    assert attrs["error"]["code"] == "atomic_rolled_back"
    assert attrs["error"]["details"] == {"failed_items": 3}
    result = attrs["result"]
    assert result["processed_items"] == 50
    assert result["failed_items"] == 3
    assert result["successful_items"] == 0
    assert result["skipped_items"] == 47
    assert result["data"] == []
    assert [e["index"] for e in result["errors"]] == [3, 45, 48]
    assert _error_indexes(api, job["id"]) == [3, 45, 48]
    assert _listing(api) == before


def test_atomic_create__all_good_completes_and_applies_all(
    api: httpx.Client, product_type: Any
) -> None:
    items = [_product(i) for i in range(30)]

    job = _run(
        api,
        "/items/bulk-create-jobs",
        {"data": items, "atomic": True, "chunk_size": 7},
    )

    assert job["attributes"]["status"] == "completed"
    assert job["attributes"]["result"]["successful_items"] == 30
    assert len(_listing(api)) == 30


def test_atomic_create__duplicates_across_chunks_are_all_reported(
    api: httpx.Client, product_type: Any
) -> None:
    bulk_create(api, [_product(1)])
    before = _listing(api)
    items = [_product(i) for i in range(2, 22)] + [_product(1), _product(5)]

    job = _run(
        api, "/items/bulk-create-jobs", {"data": items, "atomic": True, "chunk_size": 5}
    )

    assert job["attributes"]["error"]["code"] == "atomic_rolled_back"
    assert _error_indexes(api, job["id"]) == [20, 21]
    assert _listing(api) == before


def test_atomic_update_and_destroy__one_bad_item_changes_nothing(
    api: httpx.Client, product_type: Any
) -> None:
    created = bulk_create(api, [_product(i) for i in range(12)])
    ids = [d["id"] for d in created["attributes"]["result"]["data"]]
    before = _listing(api)
    changes = [{"id": i, "attributes": {"stock": 7}} for i in ids]
    changes[-1]["attributes"]["price"] = -5

    updated = _run(
        api,
        "/items/bulk-update-jobs",
        {"data": changes, "atomic": True, "chunk_size": 4},
    )
    destroyed = _run(
        api,
        "/items/bulk-destroy-jobs",
        {"items": [*ids, "01NOSUCHITEM0000000000000"], "atomic": True},
    )

    assert updated["attributes"]["error"]["code"] == "atomic_rolled_back"
    assert _error_indexes(api, updated["id"]) == [11]
    assert destroyed["attributes"]["error"]["code"] == "atomic_rolled_back"
    assert _error_indexes(api, destroyed["id"]) == [12]
    assert _listing(api) == before


def test_atomic_import__a_bad_row_changes_nothing(
    api: httpx.Client, product_type: Any
) -> None:
    rows = "".join(f"P{i},S-{i},{i}\n" for i in range(20))
    body = f"name,sku,price\n{rows}P20,S-20,-3\n".encode()

    response = api.post(
        "/items/import-jobs",
        content=body,
        params={"type": "product", "atomic": "true", "chunk_size": "6"},
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json()["data"]["id"])

    assert job["attributes"]["options"]["atomic"] is True
    assert job["attributes"]["error"]["code"] == "atomic_rolled_back"
    assert job["attributes"]["result"]["errors"][0]["line"] == 22
    assert _listing(api) == []


# Error budgets


def test_max_errors__stops_the_job_and_its_remaining_chunks_never_run(
    api: httpx.Client, server: RunningServer, product_type: Any
) -> None:
    items = [_product(i) for i in range(100)]
    for i in range(0, 100, 10):
        items[i]["price"] = -1  # one bad item in each chunk of 10

    job = _run(
        api,
        "/items/bulk-create-jobs",
        {"data": items, "max_errors": 2, "chunk_size": 10},
    )

    attrs = job["attributes"]
    assert attrs["status"] == "failed"
    assert attrs["error"]["code"] == "error_budget_exceeded"
    assert attrs["error"]["details"] == {
        "failed_items": 3,
        "processed_items": 30,
        "max_errors": 2,
    }
    result = attrs["result"]
    assert result["processed_items"] == 30
    assert result["failed_items"] == 3
    assert result["successful_items"] == 27
    assert _error_indexes(api, job["id"]) == [0, 10, 20]
    assert len(_listing(api)) == 27
    assert _chunk_statuses(server, job["id"]) == ["done"] * 3 + ["pending"] * 7
    assert attrs["progress"] == 1


def test_max_errors__with_one_chunk_per_transaction(
    make_server: Callable[..., RunningServer],
) -> None:
    # Each claim holds one chunk here: the budget is judged across claims,
    # and a claim leased before the job failed is given back unrun.
    server = make_server(txn_items=10, workers=2)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as api:
        api.post("/item-types", json=item_type_body("product", PRODUCT_FIELDS))
        items = [_product(i, price=-1 if i % 10 == 0 else 1) for i in range(100)]
        job = _run(
            api,
            "/items/bulk-create-jobs",
            {"data": items, "max_errors": 2, "chunk_size": 10},
        )
        stored = len(_listing(api))

    result = job["attributes"]["result"]
    assert job["attributes"]["error"]["code"] == "error_budget_exceeded"
    assert result["failed_items"] == 3
    assert result["processed_items"] == 30
    assert stored == result["successful_items"] == 27
    assert _chunk_statuses(server, job["id"]).count("done") == 3


def test_max_error_rate__judged_after_the_first_chunk(
    api: httpx.Client, product_type: Any
) -> None:
    items = [_product(i) for i in range(40)]
    for i in range(4):
        items[i]["price"] = -1  # 4 of the first 10 fail: 40%

    job = _run(
        api,
        "/items/bulk-create-jobs",
        {"data": items, "max_error_rate": 0.25, "chunk_size": 10},
    )
    within = _run(
        api,
        "/items/bulk-create-jobs",
        {
            "data": [_product(i) for i in range(100, 140)],
            "max_error_rate": 0.25,
            "chunk_size": 10,
        },
    )

    assert job["attributes"]["error"]["code"] == "error_budget_exceeded"
    assert job["attributes"]["result"]["processed_items"] == 10
    assert job["attributes"]["result"]["successful_items"] == 6
    assert within["attributes"]["status"] == "completed"


def test_budget_not_exceeded__the_job_ends_as_usual(
    api: httpx.Client, product_type: Any
) -> None:
    items = [_product(i) for i in range(20)]
    items[5]["price"] = -1

    job = _run(
        api,
        "/items/bulk-create-jobs",
        {"data": items, "max_errors": 1, "chunk_size": 5},
    )

    assert job["attributes"]["status"] == "completed_with_errors"
    assert job["attributes"]["result"]["processed_items"] == 20


# Retention, removal, purge


def test_expires_at__default_retention_and_retain_for(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(job_retention_days=2)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as api:
        api.post("/item-types", json=item_type_body("product", PRODUCT_FIELDS))
        default = bulk_create(api, [_product(1)])
        short = bulk_create(api, [_product(2)], retain_for=3600)
        failed = _run(
            api,
            "/items/bulk-create-jobs",
            {"data": [_product(3, price=-1)], "atomic": True},
        )

    for job, kept in ((default, 2 * 86_400), (short, 3600), (failed, 2 * 86_400)):
        attrs = job["attributes"]
        delta = _time(attrs["expires_at"]) - _time(attrs["finished_at"])
        assert delta == timedelta(seconds=kept), attrs["status"]
    assert short["attributes"]["options"]["retain_for"] == 3600
    assert failed["attributes"]["status"] == "failed"


def _expired_jobs(api: httpx.Client) -> dict[str, str]:
    """A job of each kind with rows in every table, all retained for 0 s."""
    api.post("/item-types", json=item_type_body("offer", OFFER_FIELDS))
    items = [_product(i) for i in range(10)] + [_product(99, price=-1)]
    created = bulk_create(api, items, retain_for=0, chunk_size=4)
    exported = _run(api, "/items/export-jobs", {"format": "ndjson", "retain_for": 0})
    migrated = _run(
        api,
        "/items/migrate-jobs",
        {"from": "product", "to": "offer", "retain_for": 0},
    )
    return {
        "create": created["id"],
        "export": exported["id"],
        "migrate": migrated["id"],
    }


def test_purge__removes_every_row_and_file_of_expired_jobs(
    api: httpx.Client, server: RunningServer, product_type: Any
) -> None:
    expired = _expired_jobs(api)
    kept = bulk_create(api, [_product(500)])
    exports = server.runtime.settings.exports_dir
    assert [p.name for p in exports.iterdir()] == [f"{expired['export']}.ndjson"]
    assert _rows_of(server, expired["create"])["job_errors"] == 1
    assert _rows_of(server, expired["migrate"])["migrated_items"] == 10

    response = api.post("/jobs/purge")

    assert response.status_code == 200, response.text
    removed = {j["id"] for j in response.json()["data"]}
    assert removed == set(expired.values())
    assert response.json()["meta"]["total_count"] == 3
    for job_id in expired.values():
        assert _rows_of(server, job_id) == dict.fromkeys(
            ("job_chunks", "job_errors", "migrated_items", "jobs"), 0
        )
        assert api.get(f"/jobs/{job_id}").status_code == 404
    assert list(exports.iterdir()) == []
    assert api.get(f"/jobs/{kept['id']}").status_code == 200
    assert api.post("/jobs/purge").json()["data"] == []


def test_purge__runs_periodically_in_the_server(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(purge_interval_seconds=1)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as api:
        api.post("/item-types", json=item_type_body("product", PRODUCT_FIELDS))
        job = bulk_create(api, [_product(1)], retain_for=0)
        deadline = time.monotonic() + 10
        while api.get(f"/jobs/{job['id']}").status_code != 404:
            assert time.monotonic() < deadline, "the job was not purged"
            time.sleep(0.1)
    assert _rows_of(server, job["id"])["job_chunks"] == 0


def test_delete__removes_every_row_and_file_of_a_finished_job(
    api: httpx.Client, server: RunningServer, product_type: Any
) -> None:
    jobs_ = _expired_jobs(api)

    for job_id in jobs_.values():
        assert api.delete(f"/jobs/{job_id}").status_code == 204
        assert _rows_of(server, job_id) == dict.fromkeys(
            ("job_chunks", "job_errors", "migrated_items", "jobs"), 0
        )
    assert list(server.runtime.settings.exports_dir.iterdir()) == []
    assert api.delete(f"/jobs/{jobs_['create']}").status_code == 404


def test_delete__a_job_not_finished_is_409(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(workers=0)  # nothing runs: the job stays queued
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as api:
        api.post("/item-types", json=item_type_body("product", PRODUCT_FIELDS))
        job_id = _start(api, "/items/bulk-create-jobs", {"data": [_product(1)]})

        response = api.delete(f"/jobs/{job_id}")

        assert response.status_code == 409, response.text
        assert response.json()["errors"][0]["code"] == "job_active"
        assert api.get(f"/jobs/{job_id}").json()["data"]["attributes"]["status"] == (
            "queued"
        )
    assert _rows_of(server, job_id)["job_chunks"] == 1


def test_cli_rm_and_purge(
    api: httpx.Client, server: RunningServer, product_type: Any
) -> None:
    gone = bulk_create(api, [_product(1)], retain_for=0)
    removed = bulk_create(api, [_product(2)])
    runner = CliRunner()
    env = {"LORRY_URL": server.url, "LORRY_TOKEN": ADMIN_TOKEN}

    rm = runner.invoke(app, ["jobs", "rm", removed["id"]], env=env)
    purge = runner.invoke(app, ["jobs", "purge"], env=env)
    again = runner.invoke(app, ["jobs", "purge", "--json"], env=env)
    missing = runner.invoke(app, ["jobs", "rm", removed["id"]], env=env)

    assert rm.exit_code == 0, rm.output
    assert f"removed job {removed['id']}" in rm.stderr
    assert purge.exit_code == 0, purge.output
    assert gone["id"] in purge.stdout
    assert "removed 1 expired jobs" in purge.stderr
    assert again.stdout.strip() == "[]"
    assert missing.exit_code == 1
    for job in (gone, removed):
        assert api.get(f"/jobs/{job['id']}").status_code == 404


def test_cli_rm__a_queued_job_is_refused(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(workers=0)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as api:
        api.post("/item-types", json=item_type_body("product", PRODUCT_FIELDS))
        job_id = _start(api, "/items/bulk-create-jobs", {"data": [_product(1)]})
    env = {"LORRY_URL": server.url, "LORRY_TOKEN": ADMIN_TOKEN}

    result = CliRunner().invoke(app, ["jobs", "rm", job_id], env=env)

    assert result.exit_code == 1
    assert "queued" in result.stderr


# Option validation


@pytest.mark.parametrize(
    ("body", "pointer", "words"),
    [
        ({"retain_for": -1}, "/retain_for", "whole number"),
        ({"retain_for": "3600"}, "/retain_for", "whole number"),
        ({"retain_for": True}, "/retain_for", "whole number"),
        ({"retain_for": 1.5}, "/retain_for", "whole number"),
        ({"retain_for": 10**10}, "/retain_for", "at most"),
        ({"atomic": "yes"}, "/atomic", "true or false"),
        ({"max_errors": -2}, "/max_errors", "whole number"),
        ({"max_error_rate": 1.5}, "/max_error_rate", "from 0 to 1"),
        ({"atomic": True, "max_errors": 3}, "/max_errors", "not atomic"),
    ],
)
def test_bulk_options__bad_values_are_422_at_their_pointer(
    api: httpx.Client,
    product_type: Any,
    body: dict[str, Any],
    pointer: str,
    words: str,
) -> None:
    response = api.post("/items/bulk-create-jobs", json={"data": [_product(1)], **body})

    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "invalid_option"
    assert error["source"] == {"pointer": pointer}
    assert words in error["detail"]


def test_retain_for__checked_on_every_kind(
    api: httpx.Client, product_type: Any
) -> None:
    api.post("/item-types", json=item_type_body("offer", OFFER_FIELDS))
    bodies = {
        "/items/bulk-update-jobs": {"data": [], "retain_for": -1},
        "/items/bulk-destroy-jobs": {"items": [], "retain_for": "x"},
        "/items/export-jobs": {"retain_for": -1},
        "/items/migrate-jobs": {"from": "product", "to": "offer", "retain_for": -1},
    }
    for path, body in bodies.items():
        response = api.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["errors"][0]["source"] == {"pointer": "/retain_for"}

    imported = api.post(
        "/items/import-jobs",
        content=b"name,sku\nP,S\n",
        params={"type": "product", "retain_for": "soon"},
        headers={"Content-Type": "text/csv"},
    )
    assert imported.status_code == 422, imported.text
    assert imported.json()["errors"][0]["source"] == {"parameter": "retain_for"}

    export_atomic = api.post("/items/export-jobs", json={"atomic": True})
    assert export_atomic.status_code == 422
    assert "does not apply to export" in export_atomic.json()["errors"][0]["detail"]
