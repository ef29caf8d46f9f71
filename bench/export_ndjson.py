"""NDJSON export: Lorry over HTTP against the raw limit of the same work, in one run.

    python bench/export_ndjson.py 100000
    python bench/export_ndjson.py 100000 1000000   # also compares peak memory

The items are loaded first with a bulk create job (not timed), and the
server is started afresh so that its peak memory is the export's alone.

(a) raw limit: a plain SELECT of the same rows from the same SQLite file,
    each written out as one NDJSON line (the stored JSON decoded, the id and
    timestamps added, encoded again) with the stdlib json module;
(b) Lorry: one export job to NDJSON over HTTP, waited for, and its file
    downloaded through the signed URL and checked against its SHA-256.

Prints items/s of each, their ratio, and the peak RSS of every process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bulk_create import FIELDS, Run, ndjson
from harness import compare_rss, create_type, processes_rss, serve, wait_job

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(us: int) -> str:
    stamp = _EPOCH + timedelta(microseconds=us)
    return stamp.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def raw_limit(db_file: Path, out: Path) -> float:
    db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    start = time.perf_counter()
    count = 0
    with out.open("w", encoding="utf-8") as sink:
        cursor = db.execute(
            "SELECT id, data, created_at, updated_at, version FROM items ORDER BY pk"
        )
        while rows := cursor.fetchmany(2000):
            lines = []
            for item_id, data, created, updated, version in rows:
                item = {"id": item_id, **json.loads(data)}
                item["created_at"] = _iso(created)
                item["updated_at"] = _iso(updated)
                item["meta"] = {"version": version}
                lines.append(json.dumps(item, separators=(",", ":")))
            sink.write("\n".join(lines) + "\n")
            count += len(rows)
    elapsed = time.perf_counter() - start
    db.close()
    return count / elapsed


def load(n: int, workdir: Path, port: int) -> None:
    with serve(workdir, port) as (_proc, api):
        create_type(api, "product", FIELDS)
        response = api.post(
            "/items/bulk-create-jobs",
            content=ndjson(n),
            headers={"Content-Type": "application/x-ndjson"},
        )
        response.raise_for_status()
        attrs = wait_job(api, response.json()["data"]["id"])
        if attrs["status"] != "completed":
            raise SystemExit(f"loading did not complete: {attrs['status']}")


def lorry_run(n: int, workdir: Path, port: int) -> Run:
    with serve(workdir, port) as (proc, api):
        start = time.perf_counter()
        response = api.post(
            "/items/export-jobs",
            json={"filter": {"type": "product"}, "format": "ndjson"},
        )
        response.raise_for_status()
        accepted = time.perf_counter() - start
        attrs = wait_job(api, response.json()["data"]["id"])
        if attrs["status"] != "completed":
            raise SystemExit(f"export did not complete: {attrs['status']}")
        result = attrs["result"]
        digest = hashlib.sha256()
        with (
            api.stream("GET", result["url"]) as download,
            (workdir / "lorry.ndjson").open("wb") as sink,
        ):
            download.raise_for_status()
            for chunk in download.iter_bytes(1 << 20):
                digest.update(chunk)
                sink.write(chunk)
        elapsed = time.perf_counter() - start
        if digest.hexdigest() != result["sha256"] or result["item_count"] != n:
            raise SystemExit(f"the file is not what the job says: {result}")
        running = float(attrs["details"]["items_per_second"])
        return Run(n / elapsed, accepted, running, processes_rss(proc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="+", help="numbers of items, one run each")
    parser.add_argument("--port", type=int, default=8733)
    args = parser.parse_args()

    runs: list[tuple[int, Run]] = []
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix="lorry-bench-") as tmp:
            workdir = Path(tmp)
            load(n, workdir, args.port)
            db_file = workdir / "lorry-data" / "lorry.db"
            raw = raw_limit(db_file, workdir / "raw.ndjson")
            run = lorry_run(n, workdir, args.port)
            size_mb = (workdir / "lorry.ndjson").stat().st_size / 1e6
        print(f"NDJSON export, N = {n:,} ({size_mb:,.0f} MB, {os.cpu_count()} cores)")
        print(f"  raw limit (SELECT + stdlib json)  {raw:>12,.0f} items/s")
        print(f"  Lorry (HTTP request to download)  {run.rate:>12,.0f} items/s")
        print(f"  Lorry (job running phase only)    {run.running_rate:>12,.0f} items/s")
        print(f"  ratio Lorry / raw                 {run.rate / raw:>12.2f}")
        for name, mb in run.peak_rss_mb.items():
            print(f"  peak RSS, {name:<23}{mb:>10.0f} MB")
        runs.append((n, run))
    compare_rss([(n, run.peak_rss_mb) for n, run in runs])


if __name__ == "__main__":
    main()
