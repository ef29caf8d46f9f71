import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import Result

from lorry.cli import common
from lorry.client import Client

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
def movies_csv(tmp_path: Path) -> Path:
    path = tmp_path / "movies.csv"
    path.write_bytes(
        b"\xef\xbb\xbfmovieId,title,genres,imdbId\n"
        b'1,"Toy Story (1995)",Adventure|Animation,0114709\n'
        b'2,"Heat, the film",,0113277\n'
    )
    return path


def test_import_csv__streams_mapped_items_and_exits_0(
    server: Any, lorry: Lorry, movies_csv: Path
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)

    result = lorry("import", str(movies_csv), "--type", "movie", "--chunk-size", "50")

    assert result.exit_code == 0, result.output
    assert server.uploads == [
        [
            {
                "item_type": "movie",
                "movie_id": 1,
                "title": "Toy Story (1995)",
                "genres": "Adventure|Animation",
            },
            {"item_type": "movie", "movie_id": 2, "title": "Heat, the film"},
        ]
    ]
    upload = next(r for r in server.requests if r.method == "POST")
    assert upload.headers["Content-Type"] == "application/x-ndjson"
    assert upload.url.params.multi_items() == [("chunk_size", "50")]
    assert server.clients == [("http://lorry.test", "cli-token")]
    assert "ignoring columns that 'movie' has no field for: imdbId" in result.stderr
    assert "completed" in result.stderr
    assert "processed 2" in result.stderr
    assert result.stdout == ""


def test_import__warns_about_an_unknown_column_even_when_it_is_empty(
    server: Any, lorry: Lorry, tmp_path: Path
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)
    path = tmp_path / "movies.csv"
    path.write_text("movieId,tmdbId\n1,\n2,\n")

    result = lorry("import", str(path), "--type", "movie")

    assert result.exit_code == 0, result.output
    assert "has no field for: tmdbId" in result.stderr
    assert server.uploads == [
        [{"item_type": "movie", "movie_id": 1}, {"item_type": "movie", "movie_id": 2}]
    ]


def test_import__link_by_and_skip_duplicates_become_query_options(
    server: Any, lorry: Lorry, tmp_path: Path
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)
    server.add_type("rating", *RATING_FIELDS)
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")

    result = lorry(
        "import",
        str(path),
        "--type",
        "rating",
        "--map",
        "movieId=movie",
        "--link",
        "movie=movie_id",
        "--skip-duplicates",
    )

    assert result.exit_code == 0, result.output
    assert server.uploads[-1] == [
        {"item_type": "rating", "user_id": 1, "movie": 31, "rating": 2.5}
    ]
    upload = next(r for r in server.requests if r.method == "POST")
    assert upload.url.params.multi_items() == [
        ("skip_duplicates", "true"),
        ("link_by[movie]", "movie_id"),
    ]
    assert "timestamp" in result.stderr


@pytest.mark.parametrize("suffix", [".ndjson", ".jsonl", ".json"])
def test_import_json_formats(
    server: Any, lorry: Lorry, tmp_path: Path, suffix: str
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)
    items = [{"movieId": 1, "title": "A"}, {"movie_id": 2, "title": "B", "x": 1}]
    path = tmp_path / f"movies{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(items, indent=2))
    else:
        path.write_text("\n".join(json.dumps(item) for item in items) + "\n")

    result = lorry("import", str(path), "--type", "movie")

    assert result.exit_code == 0, result.output
    assert server.uploads[-1] == [
        {"item_type": "movie", "movie_id": 1, "title": "A"},
        {"item_type": "movie", "movie_id": 2, "title": "B"},
    ]


def test_import__completed_with_errors_exits_3_and_lists_errors(
    server: Any, lorry: Lorry, movies_csv: Path
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)
    server.final_status = "completed_with_errors"
    server.item_errors = [
        {
            "index": 1,
            "id": None,
            "code": "not_unique",
            "field": "movie_id",
            "message": "movie_id 2 is already used",
        }
    ]

    result = lorry("import", str(movies_csv), "--type", "movie", "--json")

    assert result.exit_code == 3
    assert "#1 movie_id not_unique movie_id 2 is already used" in result.stderr
    job = json.loads(result.stdout)
    assert job["id"] == "01JOB"
    assert job["attributes"]["status"] == "completed_with_errors"
    assert job["attributes"]["result"]["failed_items"] == 1


def test_import__failed_job_exits_1_with_its_error(
    server: Any, lorry: Lorry, movies_csv: Path
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)
    server.final_status = "failed"
    server.job_error = {"code": "input_unreadable", "message": "truncated body"}

    result = lorry("import", str(movies_csv), "--type", "movie")

    assert result.exit_code == 1
    assert "input_unreadable: truncated body" in result.stderr


def test_import__no_wait_prints_the_job_id(
    server: Any, lorry: Lorry, movies_csv: Path
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)

    result = lorry("import", str(movies_csv), "--type", "movie", "--no-wait")

    assert result.exit_code == 0, result.output
    assert result.stdout == "01JOB\n"
    assert not any(r.url.path.startswith("/jobs") for r in server.requests)


def test_import__unknown_type_is_a_usage_error(
    server: Any, lorry: Lorry, movies_csv: Path
) -> None:
    result = lorry("import", str(movies_csv), "--type", "nope")

    assert result.exit_code == 2
    assert "item type 'nope' does not exist" in result.stderr
    assert not any(r.method == "POST" for r in server.requests)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--map", "movieId"], "expected KEY=VALUE"),
        (["--map", "movieId=nope"], "has no field 'nope'"),
        (["--link", "title=movie_id"], "'title' is not a link field"),
        (["--delimiter", ";;"], "expected one character"),
        (["--format", "xml"], "xml"),
    ],
)
def test_import__bad_options_are_usage_errors(
    server: Any, lorry: Lorry, movies_csv: Path, args: list[str], message: str
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)

    result = lorry("import", str(movies_csv), "--type", "movie", *args)

    assert result.exit_code == 2
    assert message in result.stderr


def test_import__unknown_extension_needs_format(
    server: Any, lorry: Lorry, tmp_path: Path
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)
    path = tmp_path / "movies.txt"
    path.write_text("movieId\n1\n")

    refused = lorry("import", str(path), "--type", "movie")
    accepted = lorry("import", str(path), "--type", "movie", "--format", "csv")

    assert refused.exit_code == 2
    assert "give --format" in refused.stderr
    assert accepted.exit_code == 0, accepted.output
    assert server.uploads == [[{"item_type": "movie", "movie_id": 1}]]


def test_import__broken_json_file_exits_1_with_one_line(
    server: Any, lorry: Lorry, tmp_path: Path
) -> None:
    server.add_type("movie", *MOVIE_FIELDS)
    path = tmp_path / "movies.json"
    path.write_text('[{"title": "A"}, {"title": ]')

    result = lorry("import", str(path), "--type", "movie")

    assert result.exit_code == 1
    assert "movies.json, near character" in result.stderr
    assert "Traceback" not in result.output


def test_import__bad_token_prints_the_api_detail(
    server: Any, lorry: Lorry, movies_csv: Path
) -> None:
    result = lorry(
        "import", str(movies_csv), "--type", "movie", env={"LORRY_TOKEN": "wrong"}
    )

    assert result.exit_code == 1
    assert result.stderr == (
        "error: missing or invalid API token (check --token / LORRY_TOKEN)\n"
    )


def test_import__server_down_is_one_line_and_verbose_shows_the_traceback(
    lorry: Lorry, movies_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    def make_client(url: str, token: str | None) -> Client:
        return Client(url, token=token, transport=httpx.MockTransport(refuse))

    monkeypatch.setattr(common, "make_client", make_client)

    quiet = lorry("import", str(movies_csv), "--type", "movie")
    verbose = lorry("import", str(movies_csv), "--type", "movie", "-v")

    assert quiet.exit_code == verbose.exit_code == 1
    assert quiet.stderr == (
        "error: cannot reach server at http://lorry.test: Connection refused\n"
    )
    assert "Traceback" in verbose.stderr
