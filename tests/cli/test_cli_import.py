"""``lorry import`` against a real server: the file goes up, the server reads it."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from lorry.cli import app, common
from lorry.client import Client
from tests.conftest import ADMIN_TOKEN, RunningServer, item_type_body

MOVIE_FIELDS = [
    {"api_key": "movie_id", "field_type": "integer", "unique": True},
    {"api_key": "title", "field_type": "string"},
    {"api_key": "genres", "field_type": "string"},
]
RATING_FIELDS = [
    {"api_key": "user_id", "field_type": "integer"},
    {"api_key": "movie", "field_type": "link", "validators": {"item_types": ["movie"]}},
    {"api_key": "rating", "field_type": "float"},
]

Lorry = Callable[..., Result]


@pytest.fixture
def live(make_server: Callable[..., RunningServer]) -> Iterator[httpx.Client]:
    server = make_server()
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=60,
    ) as api:
        for key, fields in (("movie", MOVIE_FIELDS), ("rating", RATING_FIELDS)):
            response = api.post("/item-types", json=item_type_body(key, fields))
            assert response.status_code == 201, response.text
        yield api


@pytest.fixture
def lorry(live: httpx.Client) -> Lorry:
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        environment = {
            "LORRY_URL": str(live.base_url).rstrip("/"),
            "LORRY_TOKEN": ADMIN_TOKEN,
            **(env or {}),
        }
        return runner.invoke(app, list(args), env=environment)

    return run


@pytest.fixture
def movies_csv(tmp_path: Path) -> Path:
    path = tmp_path / "movies.csv"
    path.write_bytes(
        b"\xef\xbb\xbfmovieId,title,genres,imdbId\n"
        b'1,"Toy Story (1995)",Adventure|Animation,0114709\n'
        b'2,"Heat, the film",,0113277\n'
    )
    return path


def _items(api: httpx.Client, item_type: str) -> list[dict[str, Any]]:
    params = {"filter[type]": item_type, "order_by": "created_at", "page[limit]": 500}
    return list(api.get("/items", params=params).json()["data"])


def test_import_csv__exits_0_and_says_which_columns_went_nowhere(
    live: httpx.Client, lorry: Lorry, movies_csv: Path
) -> None:
    result = lorry("import", str(movies_csv), "--type", "movie", "--chunk-size", "1")

    assert result.exit_code == 0, result.output
    assert "columns that went to no field: imdbId" in result.stderr
    assert "processed 2" in result.stderr
    assert result.stdout == ""
    got = [(i["movie_id"], i["title"], i["genres"]) for i in _items(live, "movie")]
    assert got == [
        (1, "Toy Story (1995)", "Adventure|Animation"),
        (2, "Heat, the film", None),
    ]


def test_import__map_link_and_skip_duplicates(
    live: httpx.Client, lorry: Lorry, movies_csv: Path, tmp_path: Path
) -> None:
    assert lorry("import", str(movies_csv), "--type", "movie").exit_code == 0
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,2,2.5,1260759144\n")

    result = lorry(
        "import",
        str(path),
        "--type",
        "rating",
        "--map",
        "movieId=movie",
        "--map",
        "timestamp=",
        "--link",
        "movie=movie_id",
    )

    assert result.exit_code == 0, result.output
    heat = _items(live, "movie")[1]["id"]
    assert [
        (r["user_id"], r["movie"], r["rating"]) for r in _items(live, "rating")
    ] == [(1, heat, 2.5)]
    again = lorry("import", str(movies_csv), "--type", "movie", "--skip-duplicates")
    assert again.exit_code == 0, again.output
    assert "skipped 2" in again.stderr


@pytest.mark.parametrize("suffix", [".ndjson", ".jsonl", ".json"])
def test_import_json_formats(
    live: httpx.Client, lorry: Lorry, tmp_path: Path, suffix: str
) -> None:
    items = [{"movieId": 1, "title": "A"}, {"movie_id": "2", "title": "B", "x": 1}]
    path = tmp_path / f"movies{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(items, indent=2))
    else:
        path.write_text("\n".join(json.dumps(item) for item in items) + "\n")

    result = lorry("import", str(path), "--type", "movie")

    assert result.exit_code == 0, result.output
    assert [(i["movie_id"], i["title"]) for i in _items(live, "movie")] == [
        (1, "A"),
        (2, "B"),
    ]


def test_import__completed_with_errors_exits_3_and_lists_lines(
    lorry: Lorry, tmp_path: Path
) -> None:
    path = tmp_path / "movies.csv"
    path.write_text("movieId,title\n1,A\nx,B\n1,C\n")

    result = lorry("import", str(path), "--type", "movie", "--json")

    assert result.exit_code == 3, result.output
    assert "#1 line 3 movie_id (column movieId) invalid_type" in result.stderr
    assert "#2 line 4 movie_id (column movieId) not_unique" in result.stderr
    job = json.loads(result.stdout)
    assert job["attributes"]["result"]["failed_items"] == 2


def test_import__upsert_and_dry_run(
    live: httpx.Client, lorry: Lorry, movies_csv: Path, tmp_path: Path
) -> None:
    assert lorry("import", str(movies_csv), "--type", "movie").exit_code == 0
    path = tmp_path / "changes.csv"
    path.write_text("movieId,title\n1,Toy Story\n3,New\n")

    dry = lorry(
        "import", str(path), "--type", "movie", "--upsert-by", "movie_id", "--dry-run"
    )
    assert dry.exit_code == 0, dry.output
    assert [i["title"] for i in _items(live, "movie")] == [
        "Toy Story (1995)",
        "Heat, the film",
    ]

    real = lorry("import", str(path), "--type", "movie", "--upsert-by", "movie_id")
    assert real.exit_code == 0, real.output
    assert "created 1 · updated 1" in real.stderr
    assert [i["title"] for i in _items(live, "movie")] == [
        "Toy Story",
        "Heat, the film",
        "New",
    ]


def test_import__no_wait_prints_the_job_id(
    live: httpx.Client, lorry: Lorry, movies_csv: Path
) -> None:
    result = lorry("import", str(movies_csv), "--type", "movie", "--no-wait")

    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    assert live.get(f"/jobs/{job_id}").status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "nope"], "no item type 'nope'"),
        (["--type", "movie", "--map", "movieId"], "expected KEY=VALUE"),
        (["--type", "movie", "--map", "movieId=nope"], "has no field 'nope'"),
        (["--type", "movie", "--link", "title=movie_id"], "title"),
        (["--type", "movie", "--delimiter", ";;"], "delimiter"),
        (["--type", "movie", "--format", "xml"], "xml"),
        (["--type", "movie", "--unknown-columns", "reject"], "imdbId"),
    ],
)
def test_import__bad_options_are_usage_errors(
    lorry: Lorry, movies_csv: Path, args: list[str], message: str
) -> None:
    result = lorry("import", str(movies_csv), *args)

    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_import__unknown_extension_needs_format(
    live: httpx.Client, lorry: Lorry, tmp_path: Path
) -> None:
    path = tmp_path / "movies.txt"
    path.write_text("movieId\n1\n")

    refused = lorry("import", str(path), "--type", "movie")
    accepted = lorry("import", str(path), "--type", "movie", "--format", "csv")

    assert refused.exit_code == 2
    assert "give format=" in refused.stderr
    assert accepted.exit_code == 0, accepted.output


def test_import__undecodable_file_exits_2_naming_line_and_byte(
    lorry: Lorry, tmp_path: Path
) -> None:
    path = tmp_path / "movies.csv"
    path.write_bytes("movieId,title\n1,Amélie\n".encode("latin-1"))

    result = lorry("import", str(path), "--type", "movie")

    assert result.exit_code == 2, result.output
    assert "line 2" in result.stderr
    assert "Traceback" not in result.output


def test_import__bad_token_prints_the_api_detail(
    lorry: Lorry, movies_csv: Path
) -> None:
    result = lorry(
        "import", str(movies_csv), "--type", "movie", env={"LORRY_TOKEN": "wrong"}
    )

    assert result.exit_code == 1
    assert "check --token / LORRY_TOKEN" in result.stderr


def test_import__server_down_is_one_line_and_verbose_shows_the_traceback(
    movies_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    def make_client(url: str, token: str | None) -> Client:
        return Client(url, token=token, transport=httpx.MockTransport(refuse))

    monkeypatch.setattr(common, "make_client", make_client)
    runner = CliRunner()
    env = {"LORRY_URL": "http://lorry.test", "LORRY_TOKEN": "t"}
    args = ["import", str(movies_csv), "--type", "movie"]

    quiet = runner.invoke(app, args, env=env)
    verbose = runner.invoke(app, [*args, "-v"], env=env)

    assert quiet.exit_code == verbose.exit_code == 1
    assert quiet.stderr == (
        "error: cannot reach server at http://lorry.test: Connection refused\n"
    )
    assert "Traceback" in verbose.stderr
