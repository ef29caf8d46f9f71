"""kill -9 of ``lorry serve`` and its workers in the middle of a migration."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.conftest import item_type_body, wait_job
from tests.e2e.procs import ServeProcess, free_port

pytestmark = pytest.mark.slow

N = 30_000
LINKS = 3_000


def _setup(api: httpx.Client) -> None:
    for key, fields in (
        ("row", [{"api_key": "n", "field_type": "integer", "required": True}]),
        ("cell", [{"api_key": "m", "field_type": "integer", "required": True}]),
        (
            "ref",
            [{"api_key": "to", "field_type": "link",
              "validators": {"item_types": ["row", "cell"]}}],
        ),
    ):  # fmt: skip
        assert api.post("/item-types", json=item_type_body(key, fields)).is_success
    body = b"".join(
        msgspec.json.encode({"item_type": "row", "n": i}) + b"\n" for i in range(N)
    )
    response = api.post(
        "/items/bulk-create-jobs",
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    )
    wait_job(api, response.json()["data"]["id"], timeout=120)
    # Linked items spread over the whole job, before and after the kill.
    ids: list[str] = []
    for offset in range(0, N, N // 10):
        page = api.get(
            "/items",
            params={"filter[type]": "row", "page[offset]": offset,
                    "page[limit]": LINKS // 10},
        )  # fmt: skip
        ids += [item["id"] for item in page.json()["data"]]
    refs = [{"item_type": "ref", "to": item_id} for item_id in ids]
    response = api.post("/items/bulk-create-jobs", json={"data": refs})
    wait_job(api, response.json()["data"]["id"], timeout=120)


def test_kill_9_mid_migration_then_restart_migrates_every_item_once(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = {"LORRY_TXN_ITEMS": "400"}
    first = ServeProcess(data_dir, free_port(), **env)
    first.start()
    try:
        with first.client() as api:
            _setup(api)
            response = api.post(
                "/items/migrate-jobs",
                json={"from": "row", "to": "cell", "mapping": {"n": "m"},
                      "delete_source": True, "chunk_size": 200},
            )  # fmt: skip
            assert response.status_code == 202, response.text
            job_id = response.json()["data"]["id"]
            deadline = time.monotonic() + 60
            while True:
                attrs = api.get(f"/jobs/{job_id}").json()["data"]["attributes"]
                if 0.1 <= attrs["progress"] < 0.9:
                    break
                assert attrs["status"] in ("queued", "in_progress"), attrs
                assert time.monotonic() < deadline
                time.sleep(0.005)
        first.kill(with_workers=True)
        killed_at = attrs["details"]["processed"]
    finally:
        first.stop()

    second = ServeProcess(data_dir, free_port(), **env)
    second.start()
    try:
        with second.client() as api:
            job = wait_job(api, job_id, timeout=120)
    finally:
        second.stop()

    attrs = job["attributes"]
    assert attrs["status"] == "completed", attrs
    assert attrs["result"]["successful_items"] == N
    assert attrs["result"]["processed_items"] == N
    assert 0 < killed_at < N
    with sqlite3.connect(data_dir / "lorry.db") as conn:
        pks = dict(conn.execute("SELECT api_key, pk FROM item_types").fetchall())
        count, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT json_extract(data, '$.m')) FROM items "
            "WHERE item_type_pk = ?",
            (pks["cell"],),
        ).fetchone()
        left = conn.execute(
            "SELECT count(*) FROM items WHERE item_type_pk = ?", (pks["row"],)
        ).fetchone()[0]
        recorded = conn.execute(
            "SELECT count(*), count(DISTINCT target_id) FROM migrated_items "
            "WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        # Every link followed its item: each names an existing cell.
        dangling = conn.execute(
            "SELECT count(*) FROM items AS r LEFT JOIN items AS t "
            "ON t.id = json_extract(r.data, '$.to') "
            "WHERE r.item_type_pk = ? AND (t.id IS NULL OR t.item_type_pk != ?)",
            (pks["ref"], pks["cell"]),
        ).fetchone()[0]
    assert (count, distinct) == (N, N)
    assert left == 0
    assert recorded == (N, N)
    assert dangling == 0
