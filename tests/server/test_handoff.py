"""Prepared batches travelling between processes, and a preparer that dies."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import msgspec
import sqlalchemy as sa

from lorry.config import Settings
from lorry.engine.preparer import Preparer
from lorry.jobs import runner, staging
from lorry.jobs.handoff import can_hand_off, decode_prepared, encode_prepared
from lorry.jobs.model import Claim
from lorry.schema.fields import FieldDef
from lorry.store import item_types as type_store
from lorry.store.db import Database
from lorry.store.migrate import upgrade
from lorry.store.tables import items, job_chunks, job_errors
from tests.conftest import ADMIN_TOKEN, PRODUCT_FIELDS


def _setup(tmp_path: Path) -> tuple[Database, Settings, Claim]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, workers=0)
    db = Database(settings.url)
    upgrade(db)
    with db.write() as conn:
        fields = msgspec.convert(PRODUCT_FIELDS, list[FieldDef])
        type_store.create(conn, db.dialect, "product", "Product", fields)
    stager = staging.Stager(db, settings, "bulk_create", {}, 3)
    for i in range(5):
        item = {"item_type": "product", "name": f"n{i}", "sku": f"S{i}"}
        stager.add(msgspec.json.encode(item))
    stager.add(b'{"item_type": "product", "name": "no sku"}')
    stager.finish()
    claim = runner.claim(db, settings, "w")
    assert claim is not None
    return db, settings, claim


def test_prepared_batch_survives_the_trip(tmp_path: Path) -> None:
    db, settings, claim = _setup(tmp_path)
    assert can_hand_off(claim)
    local = runner.prepare_claim(db, claim)
    travelled = decode_prepared(encode_prepared(local.prepared), local.ctx)

    assert [p.seq for p in travelled] == [0, 1]
    assert [v[0] for p in travelled for v in p.valids] == [0, 1, 2, 3, 4]
    assert [(f[0], f[2].code) for p in travelled for f in p.failures] == [
        (5, "required")
    ]
    ready = runner.PreparedClaim(local.ctx, travelled, 0.0)
    with db.write() as conn:  # one sku taken already: a conflict to report
        conn.execute(
            sa.insert(items).values(
                pk=(1 << 40) + 999, id="01AAAAAAAAAAAAAAAAAAAAAAAA", item_type_pk=1,
                data='{"item_type":"product","name":"x","sku":"S3"}', version=1,
                created_at=0, updated_at=0,
            )
        )  # fmt: skip
    runner.run_claim(db, settings, claim, ready, claim_next=False)
    with db.read() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(items))
        assert count.scalar_one() == 5  # 4 new and the one before
        rows = conn.execute(sa.select(job_errors.c.idx, job_errors.c.input))
        failed = {idx: raw for idx, raw in rows}
    # The conflicting item's input did not travel; it was read back.
    assert msgspec.json.decode(failed[3]) == {
        "item_type": "product", "name": "n3", "sku": "S3"
    }  # fmt: skip
    db.dispose()


def test_a_dead_preparer_means_preparing_here(tmp_path: Path) -> None:
    db, _settings, claim = _setup(tmp_path)
    ours, theirs = multiprocessing.Pipe()
    theirs.close()
    preparer = Preparer(ours)
    preparer.give(claim)
    assert preparer.take(db, claim) is None
    assert preparer.alive is False
    db.dispose()


def test_a_schema_change_after_validation_is_caught_at_write(tmp_path: Path) -> None:
    db, settings, claim = _setup(tmp_path)
    ready = runner.prepare_claim(db, claim)  # validated against the old type
    with db.write() as conn:
        old = type_store.find(conn, "product")
        assert old is not None
        stricter = [
            msgspec.structs.replace(f, validators=msgspec.structs.replace(
                f.validators, pattern="^S[0-2]$"))
            if f.api_key == "sku" else f
            for f in old.fields
        ]  # fmt: skip
        type_store.update(conn, db.dialect, old, None, stricter)

    runner.run_claim(db, settings, claim, ready, claim_next=False)
    with db.read() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(items))
        assert count.scalar_one() == 3  # S0, S1, S2; S3 and S4 now fail
    db.dispose()


def test_an_import_batch_travels_with_its_lines_columns_and_ids(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, workers=0)
    db = Database(settings.url)
    upgrade(db)
    with db.write() as conn:
        fields = msgspec.convert(PRODUCT_FIELDS, list[FieldDef])
        type_store.create(conn, db.dialect, "product", "Product", fields)
    options = {"type": "product", "format": "csv", "mapping": {"Code": "sku"}}
    stager = staging.Stager(db, settings, "import", options, 2)
    given = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
    records = [
        (2, b'{"id":"%s","name":"a","Code":"S1"}' % given.encode(), None),
        (3, b'{"id":null,"name":"b","Code":null}', None),  # no sku: fails
        (5, b'{"id":null,"name":"c","Code":"S3","other":"x"}', None),
    ]
    stager.add_records(records)
    stager.finish()
    claim = runner.claim(db, settings, "w")
    assert claim is not None and can_hand_off(claim)

    local = runner.prepare_claim(db, claim)
    travelled = decode_prepared(encode_prepared(local.prepared), local.ctx)
    assert [p.lines for p in travelled] == [[2, 3], [5]]
    assert [v[3] for p in travelled for v in p.valids] == [given, None]
    assert travelled[0].columns == {"id": "id", "sku": "Code", "name": "name"}
    runner.run_claim(
        db, settings, claim, runner.PreparedClaim(local.ctx, travelled, 0.0),
        claim_next=False,
    )  # fmt: skip

    with db.read() as conn:
        ids = set(conn.execute(sa.select(items.c.id)).scalars())
        errors = conn.execute(
            sa.select(job_errors.c.idx, job_errors.c.line, job_errors.c.column)
        ).all()
    assert given in ids and len(ids) == 2
    assert [tuple(e) for e in errors] == [(1, 3, "Code")]
    db.dispose()


def test_an_import_is_written_in_file_order_across_workers(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, admin_token=ADMIN_TOKEN, workers=0, txn_items=2
    )
    db = Database(settings.url)
    upgrade(db)
    with db.write() as conn:
        fields = msgspec.convert(PRODUCT_FIELDS, list[FieldDef])
        type_store.create(conn, db.dialect, "product", "Product", fields)
    stager = staging.Stager(db, settings, "import", {"type": "product"}, 2)
    stager.add_records([(n + 2, b'{"sku":"S%d"}' % n, None) for n in range(6)])
    stager.finish()

    first = runner.claim(db, settings, "a")
    assert first is not None and first.seqs == (0,)
    # Chunk 1 must wait for chunk 0, which worker a holds; a itself goes on.
    assert runner.claim(db, settings, "b") is None
    second = runner.claim(db, settings, "a")
    assert second is not None and second.seqs == (1,)

    with db.write() as conn:  # worker a dies: its leases run out
        conn.execute(sa.update(job_chunks).values(lease_until=0))
    again = runner.claim(db, settings, "b")
    assert again is not None and again.seqs == (0,)
    db.dispose()
