"""Migration jobs: items of one type rewritten as another's, over HTTP.

    python bench/migrate.py 100000
    python bench/migrate.py 100000 --move --links 20000

N products are created with a bulk job on a fresh ``lorry serve`` (a real
process), then one migration job maps them to ``article`` items (two fields
renamed, one dropped, one constant) and is waited for. With ``--move`` the
sources are deleted and, with ``--links M``, M review items that link to
products are rewired to the new items as the job goes.

Prints the migration's items/s, from the request to completed, and the rate
the job reports for its running phase.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
from bulk_create import FIELDS, rows
from harness import create_type, serve, wait_job

ARTICLE_FIELDS = [
    {"api_key": "title", "field_type": "string", "required": True},
    {"api_key": "code", "field_type": "string", "required": True, "unique": True},
    {"api_key": "price", "field_type": "float"},
    {"api_key": "status", "field_type": "string"},
    {"api_key": "origin", "field_type": "string"},
]
REVIEW_FIELDS = [
    {"api_key": "stars", "field_type": "integer"},
    {
        "api_key": "subject",
        "field_type": "link",
        "validators": {"item_types": ["product", "article"]},
    },
]


def _ndjson(items: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    batch: list[bytes] = []
    for item in items:
        batch.append(msgspec.json.encode(item) + b"\n")
        if len(batch) >= 10_000:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch)


def _create(api: httpx.Client, items: Iterator[dict[str, Any]]) -> dict[str, Any]:
    response = api.post(
        "/items/bulk-create-jobs",
        content=_ndjson(items),
        headers={"Content-Type": "application/x-ndjson"},
    )
    response.raise_for_status()
    return wait_job(api, response.json()["data"]["id"])


def run(n: int, move: bool, links: int, workdir: Path, port: int) -> None:
    with serve(workdir, port) as (_proc, api):
        create_type(api, "product", FIELDS)
        create_type(api, "article", ARTICLE_FIELDS)
        create_type(api, "review", REVIEW_FIELDS)
        names = ("name", "sku", "price", "status", "description", "created_at")
        products = (
            {"item_type": "product", **dict(zip(names, row, strict=True))}
            for row in rows(n)
        )
        _create(api, products)
        if links:
            page = api.get(
                "/items",
                params={"filter[type]": "product", "page[limit]": 500},
            ).json()["data"]
            targets = [p["id"] for p in page]
            reviews = (
                {"item_type": "review", "stars": i % 5,
                 "subject": targets[i % len(targets)]}
                for i in range(links)
            )  # fmt: skip
            _create(api, reviews)

        start = time.perf_counter()
        response = api.post(
            "/items/migrate-jobs",
            json={
                "from": "product",
                "to": "article",
                "mapping": {"name": "title", "sku": "code", "description": None},
                "constants": {"origin": "bench"},
                "delete_source": move,
            },
        )
        response.raise_for_status()
        accepted = time.perf_counter() - start
        attrs = wait_job(api, response.json()["data"]["id"])
        elapsed = time.perf_counter() - start
        if attrs["status"] != "completed" or attrs["result"]["successful_items"] != n:
            raise SystemExit(f"job did not complete cleanly: {attrs}")
        mode = "move" if move else "copy"
        print(f"migration ({mode}), N = {n:,}, {links:,} linking items, "
              f"{os.cpu_count()} cores")  # fmt: skip
        print(f"  request to completed            {n / elapsed:>12,.0f} items/s")
        rate = float(attrs["details"]["items_per_second"])
        print(f"  job running phase only          {rate:>12,.0f} items/s")
        print(f"  selection and staging (to 202)  {accepted:>12.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of items to migrate")
    parser.add_argument("--move", action="store_true", help="delete the sources")
    parser.add_argument("--links", type=int, default=0, help="linking items")
    parser.add_argument("--port", type=int, default=8733)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lorry-bench-") as tmp:
        run(args.n, args.move, args.links, Path(tmp), args.port)


if __name__ == "__main__":
    main()
