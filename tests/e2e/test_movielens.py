"""Acceptance: MovieLens movies and ratings imported with the real CLI.

Reads ../shared/datasets/movielens-small; without it the test is skipped
and says so.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATASETS
from tests.e2e.procs import TOKEN, ServeProcess, free_port

MOVIELENS = DATASETS / "movielens-small"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.dataset,
    pytest.mark.skipif(
        not (MOVIELENS / "ratings.csv").exists(),
        reason=f"the MovieLens dataset is absent (looked in {MOVIELENS})",
    ),
]


def lorry(server: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LORRY_URL": server.url, "LORRY_TOKEN": TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "lorry", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_movielens_import(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data", free_port())
    server.start()
    try:
        _import_and_check(server)
    finally:
        server.stop()


def _import_and_check(server: ServeProcess) -> None:
    movie = lorry(
        server, "types", "create", "movie", "--name", "Movie",
        "--field", "movie_id:integer:required,unique",
        "--field", "title:string:required",
        "--field", "genres:string",
    )  # fmt: skip
    assert movie.returncode == 0, movie.stderr
    rating = lorry(
        server, "types", "create", "rating", "--name", "Rating",
        "--field", "user_id:integer:required",
        "--field", "movie:link:required", "--link-target", "movie=movie",
        "--field", "rating:float:required",
        "--field", "rated_at:datetime:required",
    )  # fmt: skip
    assert rating.returncode == 0, rating.stderr

    movies = lorry(
        server, "import", str(MOVIELENS / "movies.csv"), "--type", "movie", "--json"
    )
    assert movies.returncode == 0, movies.stderr
    ratings = lorry(
        server, "import", str(MOVIELENS / "ratings.csv"), "--type", "rating",
        "--map", "movieId=movie", "--map", "timestamp=rated_at",
        "--link", "movie=movie_id", "--json",
    )  # fmt: skip
    assert ratings.returncode == 0, ratings.stderr

    with open(MOVIELENS / "movies.csv", encoding="utf-8", newline="") as f:
        movie_rows = list(csv.DictReader(f))
    with open(MOVIELENS / "ratings.csv", encoding="utf-8", newline="") as f:
        rating_rows = list(csv.DictReader(f))
    assert (len(movie_rows), len(rating_rows)) == (9742, 100836)

    with server.client() as api:
        for type_key, expected in (("movie", 9742), ("rating", 100836)):
            page = api.get(
                "/items", params={"filter[type]": type_key, "page[limit]": 1}
            ).json()
            assert page["meta"]["total_count"] == expected
        jobs = api.get("/jobs", params={"filter[status]": "completed"}).json()
        results = [j["attributes"] for j in jobs["data"]]
        assert sorted(r["details"]["successful"] for r in results) == [9742, 100836]
        assert all(r["details"]["failed"] == 0 for r in results)

        # Every rating links to the movie its movieId names: check them all.
        movie_ids = {}
        offset = 0
        while offset < 9742:
            page = api.get(
                "/items",
                params={"filter[type]": "movie", "page[limit]": 500,
                        "page[offset]": offset},
            ).json()  # fmt: skip
            for item in page["data"]:
                movie_ids[item["id"]] = item["movie_id"]
            offset += len(page["data"])
        assert len(set(movie_ids.values())) == 9742
        titles = {int(r["movieId"]): r["title"] for r in movie_rows}
        first = api.get(
            "/items",
            params={"filter[type]": "movie", "filter[fields][movie_id][eq]": 1},
        ).json()["data"][0]
        assert first["title"] == titles[1]
        accented = next(r for r in movie_rows if not r["title"].isascii())
        found = api.get(
            "/items",
            params={"filter[type]": "movie",
                    "filter[fields][movie_id][eq]": accented["movieId"]},
        ).json()["data"][0]  # fmt: skip
        assert found["title"] == accented["title"]

        linked: list[tuple[int, int, float, str]] = []
        offset = 0
        while True:
            page = api.get(
                "/items",
                params={"filter[type]": "rating", "page[limit]": 500,
                        "page[offset]": offset, "order_by": "id"},
            ).json()  # fmt: skip
            for item in page["data"]:
                linked.append(
                    (item["user_id"], movie_ids[item["movie"]], item["rating"],
                     item["rated_at"])
                )  # fmt: skip
            offset += len(page["data"])
            if not page["data"]:
                break
    from datetime import UTC, datetime

    expected_rows = sorted(
        (
            int(r["userId"]),
            int(r["movieId"]),
            float(r["rating"]),
            datetime.fromtimestamp(int(r["timestamp"]), UTC)
            .replace(tzinfo=None)
            .isoformat(timespec="microseconds")
            + "Z",
        )
        for r in rating_rows
    )
    assert sorted(linked) == expected_rows
