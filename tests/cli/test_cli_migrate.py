"""``lorry migrate`` against a real server."""

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from lorry.cli import app
from tests.conftest import ADMIN_TOKEN, RunningServer, bulk_create, item_type_body

ARTICLE_FIELDS = [
    {"api_key": "title", "field_type": "string", "required": True},
    {"api_key": "legacy", "field_type": "string"},
    {"api_key": "status", "field_type": "string"},
]
POST_FIELDS = [
    {"api_key": "headline", "field_type": "string", "required": True},
    {"api_key": "legacy", "field_type": "string"},
    {"api_key": "priority", "field_type": "integer"},
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
        for key, fields in (("article", ARTICLE_FIELDS), ("post", POST_FIELDS)):
            response = api.post("/item-types", json=item_type_body(key, fields))
            assert response.status_code == 201, response.text
        items = [
            {"item_type": "article", "title": f"T{i}", "legacy": "x", "status": s}
            for i, s in enumerate(["draft", "live", "live"])
        ]
        bulk_create(api, items)
        yield api


@pytest.fixture
def lorry(live: httpx.Client) -> Lorry:
    runner = CliRunner()

    def run(*args: str) -> Result:
        env = {"LORRY_URL": str(live.base_url).rstrip("/"), "LORRY_TOKEN": ADMIN_TOKEN}
        return runner.invoke(app, list(args), env=env)

    return run


def _posts(api: httpx.Client) -> list[dict[str, Any]]:
    page = api.get("/items", params={"filter[type]": "post", "order_by": "headline"})
    return list(page.json()["data"])


def test_migrate__map_drop_set_filter_and_move(
    lorry: Lorry, live: httpx.Client
) -> None:
    result = lorry(
        "migrate", "--from", "article", "--to", "post",
        "--map", "title=headline", "--drop", "legacy", "--set", "priority=3",
        "--filter", '{"fields": {"status": "live"}}', "--delete-source", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["attributes"]["options"]["mapping"] == {
        "title": "headline",
        "legacy": None,
    }
    posts = _posts(live)
    assert [(p["headline"], p["legacy"], p["priority"]) for p in posts] == [
        ("T1", None, 3),
        ("T2", None, 3),
    ]
    left = live.get("/items", params={"filter[type]": "article"}).json()["data"]
    assert [a["title"] for a in left] == ["T0"]


def test_migrate__dry_run_prints_counts_and_writes_nothing(
    lorry: Lorry, live: httpx.Client
) -> None:
    result = lorry(
        "migrate", "--from", "article", "--to", "post", "--map", "title=headline",
        "--dry-run",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "would create 3 · would fail 0" in result.stderr
    assert '"headline":"T0"' in result.stderr
    assert _posts(live) == []


def test_migrate__a_refused_request_is_a_usage_error(lorry: Lorry) -> None:
    result = lorry("migrate", "--from", "article", "--to", "post", "--set", "x=1")

    assert result.exit_code == 2
    assert "'post' has no field 'x'" in result.stderr


def test_migrate__filter_must_be_a_json_object(lorry: Lorry) -> None:
    result = lorry("migrate", "--from", "a", "--to", "b", "--filter", "[1]")

    assert result.exit_code == 2
    assert "--filter" in result.output
