"""The job engine: exactly-once chunks, leases, recovery, index use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from lorry.config import Settings
from lorry.jobs import create, runner, staging
from lorry.jobs.model import Claim
from lorry.store import items as item_store
from lorry.store.db import Database
from lorry.store.migrate import upgrade
from lorry.store.tables import items, job_chunks, jobs, metadata
from tests.conftest import ADMIN_TOKEN, bulk_create, wait_job


def test_failing_chunk_runs_again_and_applies_once(
    api: httpx.Client, product_type: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_apply = create.apply
    calls = {"n": 0}

    def flaky_apply(conn: sa.Connection, ctx: Any, prepared: Any) -> Any:
        outcome = real_apply(conn, ctx, prepared)
        calls["n"] += 1
        if calls["n"] == 2:
            # The inserts above ran; dying now must roll every one of them back.
            raise RuntimeError("worker died mid-chunk")
        return outcome

    monkeypatch.setitem(runner._KINDS, "bulk_create", (create.prepare, flaky_apply))
    items = [{"item_type": "product", "name": "n", "sku": f"S{i}"} for i in range(500)]
    job = bulk_create(api, items, chunk_size=50)

    result = job["attributes"]["result"]
    assert job["attributes"]["status"] == "completed"
    assert result["successful_items"] == 500
    assert result["failed_items"] == 0
    assert calls["n"] > 10
    total = api.get("/items", params={"page[limit]": 1}).json()["meta"]["total_count"]
    assert total == 500


def test_lease_lost_discards_the_run(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, workers=0)
    db = Database(settings.url)
    upgrade(db)
    stager = staging.Stager(db, settings, "bulk_destroy", {}, 10)
    stager.add(b'"01AAAAAAAAAAAAAAAAAAAAAAAA"')
    job_id = stager.finish()

    claim = runner.claim(db, settings, "worker-a")
    assert claim is not None and claim.seqs == (0,)
    with db.write() as conn:  # another worker took the chunk over
        conn.execute(sa.update(job_chunks).values(lease_owner="worker-b"))
    runner.run_claim(db, settings, claim)
    with db.read() as conn:
        assert conn.execute(sa.select(job_chunks.c.status)).scalar_one() == "running"
        assert conn.execute(sa.select(jobs.c.processed_items)).scalar_one() == 0

    runner.run_claim(db, settings, Claim(job_id, claim.kind, {}, (0,), "worker-b"))
    with db.read() as conn:
        row = conn.execute(sa.select(jobs)).one()
    assert (row.status, row.processed_items, row.failed_items) == (
        "completed_with_errors",
        1,
        1,
    )
    db.dispose()


def test_recovery_after_a_crash(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, workers=0)
    db = Database(settings.url)
    upgrade(db)
    half = staging.Stager(db, settings, "bulk_destroy", {}, 1)
    half.add(b'"01AAAAAAAAAAAAAAAAAAAAAAAA"')
    half.add(b'"01AAAAAAAAAAAAAAAAAAAAAAAB"')
    half.flush()  # the upload never finished: the client got no 202
    whole = staging.Stager(db, settings, "bulk_destroy", {}, 1)
    whole.add(b'"01AAAAAAAAAAAAAAAAAAAAAAAA"')
    whole.finish()
    assert runner.claim(db, settings, "dead-worker") is not None

    assert staging.remove_unfinished(db) == 1
    assert runner.recover(db) == 1
    with db.read() as conn:
        assert conn.execute(sa.select(jobs.c.id)).scalars().all() == [whole.job_id]
        statuses = conn.execute(sa.select(job_chunks.c.status)).scalars().all()
    assert statuses == ["pending"]
    db.dispose()


def test_migrations_match_the_tables(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    db.dispose()


def test_unique_lookups_use_the_expression_index(
    api: httpx.Client, product_type: Any, server: Any
) -> None:
    bulk_create(api, [{"item_type": "product", "name": "n", "sku": "A"}])
    db = server.runtime.db
    expr = db.dialect.field_expr("sku")
    with db.read() as conn:
        pk = conn.execute(sa.text("SELECT pk FROM item_types")).scalar_one()
        query = sa.select(items.c.id).where(item_store._type_is(pk), expr == "A")
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
    assert any(f"ux_items_{pk}_sku" in str(row) for row in plan), plan


def test_progress_is_monotonic_across_many_chunks(
    api: httpx.Client, product_type: Any
) -> None:
    items = [{"item_type": "product", "name": "n", "sku": f"S{i}"} for i in range(3000)]
    response = api.post(
        "/items/bulk-create-jobs", json={"data": items, "chunk_size": 10}
    )
    job = wait_job(api, response.json()["data"]["id"])  # asserts monotonic progress
    assert job["attributes"]["details"]["chunks_done"] == 300
