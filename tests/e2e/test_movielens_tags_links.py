"""Acceptance: MovieLens tags (free text, quoted, linked to movies by their
source ids) and links.csv (IMDb ids with leading zeros, empty TMDb ids)
imported through the HTTP API, after the movies (titles with non-ASCII
text).

Reads ../shared/datasets/movielens-small; without it the test is skipped
and says so.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DATASETS, item_type_body, wait_job

MOVIELENS = DATASETS / "movielens-small"

pytestmark = [
    pytest.mark.dataset,
    pytest.mark.skipif(
        not (MOVIELENS / "tags.csv").exists(),
        reason=f"the MovieLens dataset is absent (looked in {MOVIELENS})",
    ),
]


def _rows(name: str) -> list[dict[str, str]]:
    with open(MOVIELENS / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _import(api: httpx.Client, name: str, **params: str) -> dict[str, Any]:
    response = api.post(
        "/items/import-jobs",
        params=params,
        content=(MOVIELENS / name).read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json()["data"]["id"], timeout=300)
    attrs = job["attributes"]
    assert attrs["status"] == "completed", attrs["result"]["errors"][:3]
    return dict(attrs)


def _all(api: httpx.Client, type_key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = api.get(
            "/items",
            params={
                "filter[type]": type_key,
                "page[limit]": 500,
                "page[offset]": len(out),
                "order_by": "id",
            },
        ).json()
        if not page["data"]:
            return out
        out.extend(page["data"])


def _create_type(api: httpx.Client, key: str, fields: list[dict[str, Any]]) -> None:
    response = api.post("/item-types", json=item_type_body(key, fields))
    assert response.status_code == 201, response.text


def _link_to_movie() -> dict[str, Any]:
    return {
        "api_key": "movie",
        "field_type": "link",
        "required": True,
        "validators": {"item_types": ["movie"]},
    }


def test_tags_and_links_keep_their_text_and_find_their_movies(
    api: httpx.Client, tmp_path: Path
) -> None:
    _create_type(
        api,
        "movie",
        [
            {"api_key": "movie_id", "field_type": "integer", "unique": True},
            {"api_key": "title", "field_type": "string", "required": True},
            {"api_key": "genres", "field_type": "string"},
        ],
    )
    _create_type(
        api,
        "tag",
        [
            {"api_key": "user_id", "field_type": "integer", "required": True},
            _link_to_movie(),
            {"api_key": "tag", "field_type": "string", "required": True},
            {"api_key": "tagged_at", "field_type": "datetime"},
        ],
    )
    _create_type(
        api,
        "movie_link",
        [
            _link_to_movie(),
            {"api_key": "imdb_id", "field_type": "string", "required": True},
            {"api_key": "tmdb_id", "field_type": "string"},
        ],
    )
    _import(api, "movies.csv", type="movie")
    by_movie = {"mapping[movieId]": "movie", "link_by[movie]": "movie_id"}
    tags = _import(
        api, "tags.csv", type="tag", **by_movie, **{"mapping[timestamp]": "tagged_at"}
    )
    links = _import(api, "links.csv", type="movie_link", **by_movie)

    movie_of = {m["id"]: m["movie_id"] for m in _all(api, "movie")}
    tag_rows = _rows("tags.csv")
    assert tags["result"]["successful_items"] == len(tag_rows) == 3683
    got_tags = sorted(
        (t["user_id"], movie_of[t["movie"]], t["tag"]) for t in _all(api, "tag")
    )
    want_tags = sorted(
        (int(r["userId"]), int(r["movieId"]), r["tag"]) for r in tag_rows
    )
    assert got_tags == want_tags
    # The file writes this tag as """artsy""": its quotes are part of it.
    assert (567, 4552, '"artsy"') in got_tags

    link_rows = _rows("links.csv")
    assert links["result"]["successful_items"] == len(link_rows) == 9742
    got_links = sorted(
        (movie_of[x["movie"]], x["imdb_id"], x["tmdb_id"])
        for x in _all(api, "movie_link")
    )
    want_links = sorted(
        (int(r["movieId"]), r["imdbId"], r["tmdbId"] or None) for r in link_rows
    )
    assert got_links == want_links
    assert any(imdb.startswith("00") for _m, imdb, _t in got_links)
