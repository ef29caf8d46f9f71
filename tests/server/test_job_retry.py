"""Retrying a job's failed items, and Idempotency-Key on job creations,
over the real HTTP server (issue 4, job control)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from typer.testing import CliRunner

from lorry.cli import app
from lorry.jobs.idempotency import KeyClaim, KeyTaken
from lorry.jobs.staging import Stager
from lorry.store import tokens
from lorry.store.tables import idempotency_keys, jobs
from tests.conftest import ADMIN_TOKEN, bulk_create, wait_job

KEY = {"Idempotency-Key": "order-42"}


def _product(i: int, **extra: Any) -> dict[str, Any]:
    return {"item_type": "product", "name": f"P{i}", "sku": f"S{i}", **extra}


def _job_count(api: httpx.Client) -> int:
    total: int = api.get("/jobs").json()["meta"]["total_count"]
    return total


def _skus(api: httpx.Client) -> list[str]:
    response = api.get("/items", params={"filter[type]": "product"})
    return sorted(item["sku"] for item in response.json()["data"])


def test_same_key_same_body__one_job(api: httpx.Client, product_type: Any) -> None:
    body = {"data": [_product(1), _product(2)]}
    first = api.post("/items/bulk-create-jobs", json=body, headers=KEY)
    assert first.status_code == 202, first.text
    wait_job(api, first.json()["data"]["id"])

    # The client timed out and sends the request again, with the same key.
    again = api.post("/items/bulk-create-jobs", json=body, headers=KEY)
    assert again.status_code == 202, again.text
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert again.json()["data"]["attributes"]["status"] == "completed"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert _job_count(api) == 1
    assert _skus(api) == ["S1", "S2"]


def test_same_key_streamed_body__one_job(api: httpx.Client, product_type: Any) -> None:
    lines = b"".join(
        httpx.Request("POST", "/", json=_product(i)).content + b"\n" for i in range(50)
    )

    def send() -> httpx.Response:
        return api.post(
            "/items/bulk-create-jobs",
            content=iter([lines[:100], lines[100:]]),
            params={"chunk_size": "10"},
            headers={**KEY, "Content-Type": "application/x-ndjson"},
        )

    first, again = send(), send()
    assert first.status_code == again.status_code == 202, again.text
    assert first.json()["data"]["id"] == again.json()["data"]["id"]
    wait_job(api, first.json()["data"]["id"])
    assert _job_count(api) == 1
    assert _item_count(api) == 50


def test_same_key_other_request__422(api: httpx.Client, product_type: Any) -> None:
    first = api.post(
        "/items/bulk-create-jobs", json={"data": [_product(1)]}, headers=KEY
    )
    assert first.status_code == 202, first.text
    for method_path, kwargs in [
        ("/items/bulk-create-jobs", {"json": {"data": [_product(2)]}}),
        ("/items/bulk-destroy-jobs", {"json": {"data": [_product(1)]}}),
        ("/items/export-jobs", {"json": {}}),
    ]:
        response = api.post(method_path, headers=KEY, **kwargs)
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["code"] == "idempotency_key_reused"
        assert first.json()["data"]["id"] in error["detail"]
    assert _job_count(api) == 1


def test_keys_are_per_token_and_expire(
    api: httpx.Client, product_type: Any, server: Any
) -> None:
    with server.runtime.db.write() as conn:
        tokens.create(conn, "other", "editor", "other-secret")
    body = {"data": [_product(1)], "skip_duplicates": True}
    mine = api.post("/items/bulk-create-jobs", json=body, headers=KEY)
    theirs = api.post(
        "/items/bulk-create-jobs",
        json=body,
        headers={**KEY, "Authorization": "Bearer other-secret"},
    )
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["data"]["id"] != theirs.json()["data"]["id"]

    # A key is kept 24 hours; after that it may name a new request.
    with server.runtime.db.write() as conn:
        conn.execute(sa.update(idempotency_keys).values(created_at=0))
    later = api.post(
        "/items/bulk-create-jobs", json={"data": [_product(3)]}, headers=KEY
    )
    assert later.status_code == 202, later.text
    assert later.json()["data"]["id"] != mine.json()["data"]["id"]
    assert _job_count(api) == 3


def test_bad_key__400(api: httpx.Client, product_type: Any) -> None:
    response = api.post(
        "/items/bulk-create-jobs",
        json={"data": [_product(1)]},
        headers={"Idempotency-Key": "x" * 256},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_idempotency_key"
    assert _job_count(api) == 0


def test_two_identical_requests_at_once__one_job(
    api: httpx.Client, product_type: Any, server: Any
) -> None:
    body = {"data": [_product(i) for i in range(2000)]}
    answers: list[httpx.Response] = []
    start = threading.Barrier(4)

    def send() -> None:
        with httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", **KEY},
            timeout=60,
        ) as own:
            start.wait()
            answers.append(own.post("/items/bulk-create-jobs", json=body))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 4, answers[0].text
    assert len({a.json()["data"]["id"] for a in answers}) == 1
    wait_job(api, answers[0].json()["data"]["id"])
    assert _job_count(api) == 1
    assert _item_count(api) == 2000


def _item_count(api: httpx.Client) -> int:
    response = api.get("/items", params={"filter[type]": "product"})
    total: int = response.json()["meta"]["total_count"]
    return total


def test_losing_the_race_leaves_no_job(
    api: httpx.Client, product_type: Any, server: Any
) -> None:
    """The loser of two identical requests that both staged their input:
    its job is rolled back at the unique constraint, never seen."""
    runtime = server.runtime
    claim = KeyClaim("T", "k", "h" * 64)
    winner = Stager(runtime.db, runtime.settings, "bulk_create", {}, 10)
    loser = Stager(runtime.db, runtime.settings, "bulk_create", {}, 10)
    for stager in (winner, loser):
        stager.add(httpx.Request("POST", "/", json=_product(1)).content)
    winner_id = winner.finish(None, claim)
    try:
        loser.finish(None, claim)
    except KeyTaken:
        loser.abort()
    else:
        raise AssertionError("the second finish recorded the same key")
    with runtime.db.read() as conn:
        ids = conn.execute(sa.select(jobs.c.id)).scalars().all()
        keyed = conn.execute(sa.select(idempotency_keys.c.job_id)).scalars().all()
    assert ids == [winner_id] and keyed == [winner_id]


def _failed_create(api: httpx.Client) -> dict[str, Any]:
    items = [
        _product(0),
        _product(1, price=-1),
        _product(2),
        {"item_type": "product", "sku": "S3"},
        _product(4, stock="many"),
    ]
    job = bulk_create(api, items)
    assert job["attributes"]["status"] == "completed_with_errors"
    return job


def test_retry_with_fixes(api: httpx.Client, product_type: Any) -> None:
    parent = _failed_create(api)
    errors = parent["attributes"]["result"]["errors"]
    assert [e["index"] for e in errors] == [1, 3, 4]
    fixed = {"1": _product(1, price=9.5), "3": _product(3)}

    response = api.post(f"/jobs/{parent['id']}/retry", json={"fix": fixed})
    assert response.status_code == 202, response.text
    child = wait_job(api, response.json()["data"]["id"])
    attributes = child["attributes"]
    assert attributes["kind"] == "bulk_create"
    assert attributes["parent_job_id"] == parent["id"]
    assert attributes["status"] == "completed_with_errors"
    result = attributes["result"]
    assert (result["successful_items"], result["failed_items"]) == (2, 1)
    # Item i of the child is the parent's i-th failed item.
    assert [e["index"] for e in result["errors"]] == [2]
    assert result["failed_items_data"] == [_product(4, stock="many")]
    assert _skus(api) == ["S0", "S1", "S2", "S3"]

    shown = api.get(f"/jobs/{parent['id']}").json()["data"]["attributes"]
    assert shown["retries"] == [child["id"]] and shown["parent_job_id"] is None
    listed = {j["id"]: j for j in api.get("/jobs").json()["data"]}
    assert listed[parent["id"]]["attributes"]["retries"] == [child["id"]]
    assert listed[child["id"]]["attributes"]["parent_job_id"] == parent["id"]

    # A retry of the retry, with the last item fixed, finishes the work.
    again = api.post(
        f"/jobs/{child['id']}/retry", json={"fix": {"2": _product(4, stock=4)}}
    )
    grandchild = wait_job(api, again.json()["data"]["id"])
    assert grandchild["attributes"]["status"] == "completed"
    assert grandchild["attributes"]["parent_job_id"] == child["id"]
    assert _skus(api) == ["S0", "S1", "S2", "S3", "S4"]


def test_retry_with_key_creates_one_child(api: httpx.Client, product_type: Any) -> None:
    parent = _failed_create(api)
    answers = [api.post(f"/jobs/{parent['id']}/retry", headers=KEY) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json()["data"]["id"] == answers[1].json()["data"]["id"]
    fixed = api.post(
        f"/jobs/{parent['id']}/retry", json={"fix": {"1": _product(1)}}, headers=KEY
    )
    assert fixed.status_code == 422
    assert fixed.json()["errors"][0]["code"] == "idempotency_key_reused"
    retries = api.get(f"/jobs/{parent['id']}").json()["data"]["attributes"]["retries"]
    assert retries == [answers[0].json()["data"]["id"]]


def test_retry_refusals(api: httpx.Client, product_type: Any) -> None:
    clean = bulk_create(api, [_product(9)])
    response = api.post(f"/jobs/{clean['id']}/retry")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "no_failed_items"

    parent = _failed_create(api)
    for body, code, pointer in [
        ({"fix": {"0": _product(0)}}, "invalid_fix", "/fix/0"),
        ({"fix": {"one": _product(0)}}, "invalid_fix", "/fix/one"),
        ({"fix": [1]}, "invalid", "/fix"),
        ({"fixes": {}}, "invalid_option", "/fixes"),
    ]:
        response = api.post(f"/jobs/{parent['id']}/retry", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert (error["code"], error["source"]["pointer"]) == (code, pointer)

    missing = api.post("/jobs/01NOSUCHJOB0000000000000000/retry")
    assert missing.status_code == 404
    assert (
        api.get(f"/jobs/{parent['id']}").json()["data"]["attributes"]["retries"] == []
    )


def test_retry_update_and_destroy(api: httpx.Client, product_type: Any) -> None:
    made = bulk_create(api, [_product(0), _product(1)])
    ids = [item["id"] for item in made["attributes"]["result"]["data"]]
    missing = "01AAAAAAAAAAAAAAAAAAAAAAAA"
    update = api.post(
        "/items/bulk-update-jobs",
        json={
            "data": [
                {"id": ids[0], "attributes": {"stock": 1}},
                {"id": missing, "attributes": {"stock": 2}},
            ]
        },
    )
    parent = wait_job(api, update.json()["data"]["id"])
    assert parent["attributes"]["result"]["failed_items"] == 1
    fix = {"1": {"id": ids[1], "attributes": {"stock": 2}}}
    child = wait_job(
        api,
        api.post(f"/jobs/{parent['id']}/retry", json={"fix": fix}).json()["data"]["id"],
    )
    assert child["attributes"]["kind"] == "bulk_update"
    assert child["attributes"]["status"] == "completed"
    assert api.get(f"/items/{ids[1]}").json()["data"]["stock"] == 2

    destroy = api.post("/items/bulk-destroy-jobs", json={"items": [missing]})
    parent = wait_job(api, destroy.json()["data"]["id"])
    assert parent["attributes"]["result"]["failed_items_data"] == [missing]
    response = api.post(f"/jobs/{parent['id']}/retry", json={"fix": {"0": ids[0]}})
    child = wait_job(api, response.json()["data"]["id"])
    assert child["attributes"]["status"] == "completed"
    assert api.get(f"/items/{ids[0]}").status_code == 404


def test_retry_import_keeps_options_and_lines(
    api: httpx.Client, product_type: Any
) -> None:
    body = b"Name;SKU;Price\nA;S1;1,5\nB;S2;-1\nC;;2\nD;S4;3\n"
    response = api.post(
        "/items/import-jobs",
        content=body,
        params={"type": "product", "delimiter": ";", "decimal": ","},
        headers={"Content-Type": "text/csv", **KEY},
    )
    assert response.status_code == 202, response.text
    parent = wait_job(api, response.json()["data"]["id"])
    result = parent["attributes"]["result"]
    assert [(e["index"], e["line"]) for e in result["errors"]] == [(1, 3), (2, 4)]
    record = result["failed_items_data"][0]
    assert record == {"Name": "B", "SKU": "S2", "Price": "-1"}

    # The fix is a record, as the file had it: read with the parent's options.
    fix = {"1": {**record, "Price": "2,25"}}
    answer = api.post(f"/jobs/{parent['id']}/retry", json={"fix": fix})
    assert answer.status_code == 202, answer.text
    child = wait_job(api, answer.json()["data"]["id"])
    attributes = child["attributes"]
    assert attributes["kind"] == "import"
    assert attributes["options"] == parent["attributes"]["options"]
    assert attributes["result"]["successful_items"] == 1
    # The record still unfixed fails again, at its line in the parent's file.
    assert [(e["index"], e["line"]) for e in attributes["result"]["errors"]] == [(1, 4)]
    prices = {
        i["sku"]: i["price"]
        for i in api.get("/items", params={"filter[type]": "product"}).json()["data"]
    }
    assert prices == {"S1": 1.5, "S2": 2.25, "S4": 3.0}


def test_cli_retry(
    api: httpx.Client, product_type: Any, server: Any, tmp_path: Path
) -> None:
    parent = _failed_create(api)
    fixes = tmp_path / "fixes.json"
    fixes.write_text(json.dumps({"1": _product(1), "3": _product(3)}))
    env = {"LORRY_URL": server.url, "LORRY_TOKEN": ADMIN_TOKEN}
    runner = CliRunner()

    result = runner.invoke(
        app, ["jobs", "retry", parent["id"], "--fix", str(fixes)], env=env
    )
    # One item is still wrong: completed with errors.
    assert result.exit_code == 3, result.output
    child_id = api.get(f"/jobs/{parent['id']}").json()["data"]["attributes"]["retries"][
        0
    ]
    assert f"job {child_id} retries the failed items of job {parent['id']}" in (
        result.stderr
    )
    assert _skus(api) == ["S0", "S1", "S2", "S3"]

    shown = runner.invoke(app, ["jobs", "show", child_id], env=env)
    assert any(
        line.split() == ["retry", "of", parent["id"]]
        for line in shown.stdout.splitlines()
    ), shown.stdout

    bare = runner.invoke(app, ["jobs", "retry", child_id, "--no-wait"], env=env)
    assert bare.exit_code == 0, bare.output
    assert bare.stdout.strip() != child_id

    clean = bulk_create(api, [_product(7)])
    refused = runner.invoke(app, ["jobs", "retry", clean["id"]], env=env)
    assert refused.exit_code == 1
    assert "no failed items" in refused.stderr
