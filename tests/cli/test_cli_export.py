"""``lorry export`` against a real server: the job runs, the file comes down."""

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from lorry.cli import app
from tests.conftest import ADMIN_TOKEN, RunningServer, bulk_create, item_type_body

Lorry = Callable[..., Result]

BOOK_FIELDS = [
    {"api_key": "title", "field_type": "string"},
    {"api_key": "pages", "field_type": "integer"},
]


@pytest.fixture
def live(make_server: Callable[..., RunningServer]) -> Iterator[httpx.Client]:
    server = make_server()
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=60,
    ) as api:
        response = api.post("/item-types", json=item_type_body("book", BOOK_FIELDS))
        assert response.status_code == 201, response.text
        books = [
            {"item_type": "book", "title": f"Book, {i}", "pages": i} for i in range(25)
        ]
        bulk_create(api, books)
        yield api


@pytest.fixture
def lorry(live: httpx.Client) -> Lorry:
    runner = CliRunner()

    def run(*args: str) -> Result:
        environment = {
            "LORRY_URL": str(live.base_url).rstrip("/"),
            "LORRY_TOKEN": ADMIN_TOKEN,
        }
        return runner.invoke(app, list(args), env=environment)

    return run


def test_export_csv__waits_downloads_and_exits_0(
    live: httpx.Client, lorry: Lorry, tmp_path: Path
) -> None:
    out = tmp_path / "books.csv"

    result = lorry(
        "export", "--type", "book", "--format", "csv", "-o", str(out), "--bom"
    )

    assert result.exit_code == 0, result.output
    assert "wrote 25 items" in result.stderr
    assert result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8-sig"), newline="")))
    assert sorted(int(r["pages"]) for r in rows) == list(range(25))
    assert {r["title"] for r in rows} >= {"Book, 0", "Book, 24"}


def test_export__format_from_the_extension_fields_filter_and_json_output(
    live: httpx.Client, lorry: Lorry, tmp_path: Path
) -> None:
    out = tmp_path / "books.jsonl"

    result = lorry(
        "export",
        "-t",
        "book",
        "-o",
        str(out),
        "--field",
        "pages",
        "--order-by",
        "-pages",
        "--filter",
        '{"fields": {"pages": {"lt": 3}}}',
        "--json",
    )

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["pages"] for r in records] == [2, 1, 0]
    assert "title" not in records[0]
    job = json.loads(result.stdout)
    assert (
        job["attributes"]["result"]["sha256"]
        == hashlib.sha256(out.read_bytes()).hexdigest()
    )


def test_export__usage_errors_exit_2(lorry: Lorry, tmp_path: Path) -> None:
    assert lorry("export", "-o", str(tmp_path / "books.txt")).exit_code == 2
    result = lorry("export", "-t", "nope", "-o", str(tmp_path / "x.json"))
    assert result.exit_code == 2, result.output
    assert "no item type 'nope'" in result.stderr
    assert not (tmp_path / "x.json").exists()
    missing = tmp_path / "no" / "such" / "x.csv"
    result = lorry("export", "-o", str(missing))
    assert result.exit_code == 2, result.output
    words = " ".join(w for w in result.stderr.split() if w != "│")
    assert "the folder" in words and "does not exist" in words
    assert lorry("jobs", "list", "--json").output.count('"kind": "export"') == 0
