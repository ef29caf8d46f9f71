"""Acceptance: MovieLens movies moved to a ``film`` type with the real CLI,
their 100,836 ratings following them.

Reads ../shared/datasets/movielens-small (or $LORRY_DATASETS); without it
the test is skipped and says so.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import ServeProcess, free_port
from tests.e2e.test_movielens import MOVIELENS, lorry

pytestmark = [
    pytest.mark.slow,
    pytest.mark.dataset,
    pytest.mark.skipif(
        not (MOVIELENS / "ratings.csv").exists(),
        reason=f"the MovieLens dataset is absent (looked in {MOVIELENS})",
    ),
]


def _all(api: httpx.Client, type_key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = api.get(
            "/items",
            params={"filter[type]": type_key, "page[limit]": 500,
                    "page[offset]": len(found)},
        ).json()  # fmt: skip
        if not page["data"]:
            return found
        found += page["data"]


def test_movielens_movies_move_to_films(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data", free_port())
    server.start()
    try:
        _load(server)
        _migrate_and_check(server)
    finally:
        server.stop()


def _load(server: ServeProcess) -> None:
    film = lorry(
        server, "types", "create", "film", "--name", "Film",
        "--field", "film_id:integer:required,unique",
        "--field", "name:string:required",
        "--field", "genres:string",
        "--field", "source:string",
    )  # fmt: skip
    assert film.returncode == 0, film.stderr
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
    movies = lorry(server, "import", str(MOVIELENS / "movies.csv"), "--type", "movie")
    assert movies.returncode == 0, movies.stderr
    ratings = lorry(
        server, "import", str(MOVIELENS / "ratings.csv"), "--type", "rating",
        "--map", "movieId=movie", "--map", "timestamp=rated_at",
        "--link", "movie=movie_id",
    )  # fmt: skip
    assert ratings.returncode == 0, ratings.stderr


def _migrate_and_check(server: ServeProcess) -> None:
    dry = lorry(
        server, "migrate", "--from", "movie", "--to", "film",
        "--map", "movie_id=film_id", "--map", "title=name",
        "--set", "source=movielens", "--dry-run", "--json",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    details = json.loads(dry.stdout)["attributes"]["details"]
    assert (details["would_create"], details["would_fail"]) == (9742, 0)
    assert len(details["sample"]) == 5

    move = (
        "migrate", "--from", "movie", "--to", "film",
        "--map", "movie_id=film_id", "--map", "title=name",
        "--set", "source=movielens", "--delete-source", "--json",
    )  # fmt: skip
    refused = lorry(server, *move)
    assert refused.returncode == 2
    assert "rating.movie links to 'movie' items but not to 'film'" in refused.stderr
    with server.client() as api:
        # The link field accepts films too, so that the move can rewire it.
        rating = api.get("/item-types/rating").json()["data"]["attributes"]
        fields = rating["fields"]
        for f in fields:
            if f["api_key"] == "movie":
                f["validators"]["item_types"] = ["movie", "film"]
        body = {"data": {"type": "item_type", "attributes": {"fields": fields}}}
        assert api.patch("/item-types/rating", json=body).status_code == 200

    moved = lorry(server, *move)
    assert moved.returncode == 0, moved.stderr
    result = json.loads(moved.stdout)["attributes"]["result"]
    assert (result["successful_items"], result["failed_items"]) == (9742, 0)

    with open(MOVIELENS / "movies.csv", encoding="utf-8", newline="") as f:
        movie_rows = {int(r["movieId"]): r for r in csv.DictReader(f)}
    with open(MOVIELENS / "ratings.csv", encoding="utf-8", newline="") as f:
        rating_rows = [(int(r["userId"]), int(r["movieId"])) for r in csv.DictReader(f)]

    with server.client() as api:
        assert _all(api, "movie") == []
        films = _all(api, "film")
        assert len(films) == 9742
        for film in films:
            source = movie_rows[film["film_id"]]
            assert (film["name"], film["genres"], film["source"]) == (
                source["title"],
                source["genres"],
                "movielens",
            )
        film_ids = {f["id"]: f["film_id"] for f in films}
        # Every rating now links to the film its movie became.
        linked = sorted(
            (r["user_id"], film_ids[r["movie"]]) for r in _all(api, "rating")
        )
    assert linked == sorted(rating_rows)
