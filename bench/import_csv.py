"""CSV import: Lorry over HTTP against the raw limit of the same work, in one run.

    python bench/import_csv.py 1000000
    python bench/import_csv.py 100000 1000000   # also compares peak memory

(a) raw limit: the csv module reads the file and executemany inserts its rows
    into a fresh SQLite file in one transaction, into a table with a unique
    index on sku (no validation, no JSON, nothing else);
(b) Lorry: one import job of the same file, streamed over HTTP to a fresh
    ``lorry serve`` (a real process), waited for.

Prints items/s of each, their ratio, and the peak RSS of every process.
"""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bulk_create import FIELDS, Run, rows
from harness import compare_rss, create_type, processes_rss, serve, wait_job


def write_csv(n: int, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "sku", "price", "status", "description", "created_at"])
        writer.writerows(rows(n))


def raw_limit(path: Path, workdir: Path) -> float:
    db = sqlite3.connect(workdir / "raw.db", isolation_level=None)
    db.execute(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " sku TEXT NOT NULL, price REAL, status TEXT, description TEXT,"
        " created_at TEXT)"
    )
    db.execute("CREATE UNIQUE INDEX ux_products_sku ON products (sku)")
    start = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as source:
        reader = csv.reader(source)
        next(reader)
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO products (name, sku, price, status, description, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            reader,
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    count = db.execute("SELECT count(*) FROM products").fetchone()[0]
    db.close()
    return int(count) / elapsed


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            yield chunk


def lorry_run(n: int, path: Path, workdir: Path, port: int) -> Run:
    with serve(workdir, port) as (proc, api):
        create_type(api, "product", FIELDS)
        start = time.perf_counter()
        response = api.post(
            "/items/import-jobs",
            params={"type": "product"},
            content=file_chunks(path),
            headers={"Content-Type": "text/csv"},
        )
        response.raise_for_status()
        accepted = time.perf_counter() - start
        attrs = wait_job(api, response.json()["data"]["id"])
        elapsed = time.perf_counter() - start
        if attrs["status"] != "completed" or attrs["result"]["successful_items"] != n:
            raise SystemExit(f"job did not complete cleanly: {attrs}")
        running = float(attrs["details"]["items_per_second"])
        return Run(n / elapsed, accepted, running, processes_rss(proc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="+", help="numbers of rows, one run each")
    parser.add_argument("--port", type=int, default=8732)
    args = parser.parse_args()

    runs: list[tuple[int, Run]] = []
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix="lorry-bench-") as tmp:
            workdir = Path(tmp)
            path = workdir / "products.csv"
            write_csv(n, path)
            size_mb = path.stat().st_size / 1e6
            raw = raw_limit(path, workdir)
            run = lorry_run(n, path, workdir, args.port)
        print(f"CSV import, N = {n:,} ({size_mb:,.0f} MB, {os.cpu_count()} cores)")
        print(f"  raw limit (csv + executemany)     {raw:>12,.0f} items/s")
        print(f"  Lorry (HTTP upload to completed)  {run.rate:>12,.0f} items/s")
        print(f"  Lorry (job running phase only)    {run.running_rate:>12,.0f} items/s")
        print(f"  upload and staging (until 202)    {run.accept_seconds:>12.2f} s")
        print(f"  ratio Lorry / raw                 {run.rate / raw:>12.2f}")
        for name, mb in run.peak_rss_mb.items():
            print(f"  peak RSS, {name:<23}{mb:>10.0f} MB")
        runs.append((n, run))
    compare_rss([(n, run.peak_rss_mb) for n, run in runs])


if __name__ == "__main__":
    main()
