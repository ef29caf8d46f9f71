"""kill -9 of ``lorry serve`` in the middle of a job, then a new start."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import httpx
import msgspec
import psutil
import pytest

from tests.conftest import item_type_body, wait_job
from tests.e2e.procs import ServeProcess, free_port

pytestmark = pytest.mark.slow

N = 60_000


def _start_rows_job(api: httpx.Client) -> str:
    """Start a create job of N rows with a plain (not unique) field n."""
    fields = [{"api_key": "n", "field_type": "integer", "required": True}]
    assert api.post("/item-types", json=item_type_body("row", fields)).is_success
    body = b"".join(
        msgspec.json.encode({"item_type": "row", "n": i}) + b"\n" for i in range(N)
    )
    response = api.post(
        "/items/bulk-create-jobs",
        content=body,
        params={"chunk_size": 200},
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202
    job_id: str = response.json()["data"]["id"]
    return job_id


@pytest.mark.parametrize("with_workers", [False, True], ids=["server", "all"])
def test_kill_9_mid_job_then_restart_applies_every_item_once(
    tmp_path: Path, with_workers: bool
) -> None:
    data_dir = tmp_path / "data"
    # Small transactions stretch the job out, so that the kill lands inside it.
    env = {"LORRY_TXN_ITEMS": "400"}
    first = ServeProcess(data_dir, free_port(), **env)
    first.start()
    try:
        with first.client() as api:
            job_id = _start_rows_job(api)
            deadline = time.monotonic() + 60
            while True:
                attrs = api.get(f"/jobs/{job_id}").json()["data"]["attributes"]
                if 0.1 <= attrs["progress"] < 0.9:
                    break
                assert attrs["status"] in ("queued", "in_progress"), attrs
                assert time.monotonic() < deadline
                time.sleep(0.005)
        first.kill(with_workers=with_workers)
        killed_at = attrs["details"]["processed"]
    finally:
        first.stop()

    second = ServeProcess(data_dir, free_port(), log_level="info", **env)
    second.start()
    try:
        with second.client() as api:
            job = wait_job(api, job_id, timeout=120)
    finally:
        second.stop()

    attrs = job["attributes"]
    assert attrs["status"] == "completed"
    assert attrs["result"]["successful_items"] == N
    assert attrs["result"]["processed_items"] == N
    assert 0 < killed_at < N
    with sqlite3.connect(data_dir / "lorry.db") as conn:
        count, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT json_extract(data, '$.n')) FROM items"
        ).fetchone()
        chunks = conn.execute(
            "SELECT count(*) FROM job_chunks WHERE status != 'done'"
        ).fetchone()[0]
    assert (count, distinct) == (N, N)
    assert chunks == 0
    if with_workers:
        # The worker died holding leases: the restart ran those chunks again.
        assert "that were running when the server stopped will run again" in (
            second.log.read_text()
        )


def test_one_server_per_database(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path / "a", free_port())
    first.start()
    try:
        url = f"sqlite:///{tmp_path / 'a' / 'lorry.db'}"
        for second in (
            ServeProcess(tmp_path / "a", free_port()),
            ServeProcess(tmp_path / "b", free_port(), LORRY_DATABASE_URL=url),
        ):
            with pytest.raises(RuntimeError, match="in use by another Lorry server"):
                second.start(timeout=20)
            second.stop()
    finally:
        first.stop()


def test_a_killed_worker_is_replaced_and_its_chunks_run_once(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data", free_port(), LORRY_TXN_ITEMS="400")
    server.start()
    try:
        with server.client() as api:
            job_id = _start_rows_job(api)
            deadline = time.monotonic() + 60
            while (
                api.get(f"/jobs/{job_id}").json()["data"]["attributes"]["progress"]
                < 0.1
            ):
                assert time.monotonic() < deadline
                time.sleep(0.005)
            assert server.proc is not None
            workers = [
                child
                for child in psutil.Process(server.proc.pid).children()
                if "resource_tracker" not in " ".join(child.cmdline())
            ]
            assert workers
            for child in workers:
                child.kill()
            job = wait_job(api, job_id, timeout=120)
            health = api.get("/healthz").json()
    finally:
        server.stop()

    assert job["attributes"]["status"] == "completed"
    assert job["attributes"]["result"]["successful_items"] == N
    assert health["workers"] == {"expected": 1, "alive": 1}
    with sqlite3.connect(tmp_path / "data" / "lorry.db") as conn:
        count, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT json_extract(data, '$.n')) FROM items"
        ).fetchone()
    assert (count, distinct) == (N, N)
    assert "died" in server.log.read_text()


def test_a_hard_link_to_the_database_is_the_same_database(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path / "a", free_port())
    first.start()
    try:
        alias = tmp_path / "alias.db"
        os.link(tmp_path / "a" / "lorry.db", alias)
        second = ServeProcess(
            tmp_path / "b", free_port(), LORRY_DATABASE_URL=f"sqlite:///{alias}"
        )
        with pytest.raises(RuntimeError, match="in use by another Lorry server"):
            second.start(timeout=20)
        second.stop()
    finally:
        first.stop()
