"""Bulk create: Lorry over HTTP against the raw SQLite limit, in one run.

    python bench/bulk_create.py 1000000
    python bench/bulk_create.py 100000 1000000   # also compares peak memory
    python bench/bulk_create.py 1000000 --repeat 3   # median of three ratios

(a) raw limit: the same rows inserted into a fresh SQLite file by executemany
    in one transaction, into a table with a unique index on sku;
(b) Lorry: one bulk create job of the same items, streamed as NDJSON over HTTP
    to a fresh ``lorry serve`` (a real process), waited for.

Prints items/s of each, their ratio, and the server's peak RSS. Figures are
ratios measured in the same run, because these machines are noisy.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import msgspec
from harness import create_type, processes_rss, serve, wait_job

STATUSES = ("draft", "active", "archived")
FIELDS = [
    {"api_key": "name", "field_type": "string", "required": True},
    {"api_key": "sku", "field_type": "string", "required": True, "unique": True},
    {"api_key": "price", "field_type": "float", "validators": {"range": {"min": 0}}},
    {"api_key": "status", "field_type": "enum", "validators": {"enum": list(STATUSES)}},
    {"api_key": "description", "field_type": "text"},
]


def rows(n: int) -> Iterator[tuple[str, str, float, str, str, str]]:
    # Skus arrive out of order, as real exports do, so the unique index does
    # real work; the same sequence feeds both sides.
    for i in range(n):
        key = (i * 2_654_435_761) % 4_294_967_296
        yield (
            f"Product {i}",
            f"SKU-{key:010d}-{i}",
            round((i % 10_000) / 7, 2),
            STATUSES[i % 3],
            f"Description of product {i}, a fine thing made of good stuff.",
            f"2020-01-{i % 28 + 1:02d}T10:00:00Z",
        )


def raw_limit(n: int, workdir: Path) -> float:
    path = workdir / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " sku TEXT NOT NULL, price REAL, status TEXT, description TEXT,"
        " created_at TEXT)"
    )
    conn.execute("CREATE UNIQUE INDEX ux_products_sku ON products (sku)")
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO products (name, sku, price, status, description, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows(n),
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def ndjson(n: int) -> Iterator[bytes]:
    encode = msgspec.json.Encoder().encode_into
    buf = bytearray()
    for name, sku, price, status, description, created_at in rows(n):
        item = {
            "item_type": "product",
            "name": name,
            "sku": sku,
            "price": price,
            "status": status,
            "description": description,
            "created_at": created_at,
        }
        encode(item, buf, len(buf))
        buf += b"\n"
        if len(buf) >= 1 << 20:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


class Run(NamedTuple):
    rate: float
    accept_seconds: float
    running_rate: float
    peak_rss_mb: dict[str, float]


def lorry_run(n: int, workdir: Path, port: int) -> Run:
    with serve(workdir, port) as (proc, api):
        create_type(api, "product", FIELDS)
        start = time.perf_counter()
        response = api.post(
            "/items/bulk-create-jobs",
            content=ndjson(n),
            headers={"Content-Type": "application/x-ndjson"},
        )
        response.raise_for_status()
        accepted = time.perf_counter() - start
        attrs = wait_job(api, response.json()["data"]["id"])
        elapsed = time.perf_counter() - start
        if attrs["status"] != "completed" or attrs["result"]["successful_items"] != n:
            raise SystemExit(f"job did not complete cleanly: {attrs['status']}")
        running = float(attrs["details"]["items_per_second"])
        return Run(n / elapsed, accepted, running, processes_rss(proc))


def report(n: int, raw: float, run: Run) -> None:
    print(f"bulk create, N = {n:,} ({os.cpu_count()} cores)")
    print(f"  raw limit (executemany, one txn)  {raw:>12,.0f} items/s")
    print(f"  Lorry (HTTP submit to completed)  {run.rate:>12,.0f} items/s")
    print(f"  Lorry (job running phase only)    {run.running_rate:>12,.0f} items/s")
    print(f"  upload and staging (until 202)    {run.accept_seconds:>12.2f} s")
    print(f"  ratio Lorry / raw                 {run.rate / raw:>12.2f}")
    for name, mb in run.peak_rss_mb.items():
        print(f"  peak RSS, {name:<23}{mb:>10.0f} MB")
    print(f"  peak RSS, all processes         {total_rss(run):>12.0f} MB")


def total_rss(run: Run) -> float:
    return sum(run.peak_rss_mb.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="+", help="numbers of items, one run each")
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="pairs of runs (raw, then Lorry) per N; the median ratio is reported",
    )
    args = parser.parse_args()

    runs: list[tuple[int, Run]] = []
    for n in args.n:
        ratios = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="lorry-bench-") as tmp:
                workdir = Path(tmp)
                raw = raw_limit(n, workdir)
                run = lorry_run(n, workdir, args.port)
            report(n, raw, run)
            ratios.append(run.rate / raw)
        if args.repeat > 1:
            shown = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"N = {n:,}: median ratio {statistics.median(ratios):.2f} ({shown})")
        runs.append((n, run))
    for (n_small, small), (n_big, big) in itertools.pairwise(runs):
        print(
            f"peak RSS at N = {n_big:,} / at N = {n_small:,}: "
            f"{total_rss(big) / total_rss(small):.2f} (all processes), "
            f"{big.peak_rss_mb['server'] / small.peak_rss_mb['server']:.2f} (server)"
        )


if __name__ == "__main__":
    main()
