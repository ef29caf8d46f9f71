import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

Lorry = Callable[..., Result]


def _posted_attributes(server: Any) -> dict[str, Any]:
    posted = next(r for r in server.requests if r.method == "POST")
    assert posted.url.path == "/item-types"
    body = json.loads(posted.content)
    assert body["data"]["type"] == "item_type"
    attributes: dict[str, Any] = body["data"]["attributes"]
    return attributes


def test_create__builds_fields_from_specs(server: Any, lorry: Lorry) -> None:
    result = lorry(
        "types",
        "create",
        "rating",
        "--name",
        "Rating",
        "--field",
        "sku:string:required,unique",
        "--field",
        "movie:link",
        "--field",
        "status:enum",
        "--link-target",
        "movie=movie",
        "--enum",
        "status=draft,active",
    )

    assert result.exit_code == 0, result.output
    assert _posted_attributes(server) == {
        "api_key": "rating",
        "name": "Rating",
        "fields": [
            {
                "api_key": "sku",
                "field_type": "string",
                "required": True,
                "unique": True,
            },
            {
                "api_key": "movie",
                "field_type": "link",
                "validators": {"item_types": ["movie"]},
            },
            {
                "api_key": "status",
                "field_type": "enum",
                "validators": {"enum": ["draft", "active"]},
            },
        ],
    }
    assert result.stdout == "rating\tT-rating\n"


@pytest.mark.parametrize("whole_object", [False, True])
def test_create__from_file(
    server: Any, lorry: Lorry, tmp_path: Path, whole_object: bool
) -> None:
    fields = [{"api_key": "title", "field_type": "string", "required": True}]
    path = tmp_path / "type.json"
    content: Any = {"name": "Movie", "fields": fields} if whole_object else fields
    path.write_text(json.dumps(content))
    name_args = [] if whole_object else ["--name", "Movie"]

    result = lorry(
        "types",
        "create",
        "movie",
        "--file",
        str(path),
        *name_args,
        "--field",
        "year:integer",
    )

    assert result.exit_code == 0, result.output
    assert _posted_attributes(server) == {
        "api_key": "movie",
        "name": "Movie",
        "fields": [*fields, {"api_key": "year", "field_type": "integer"}],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--field", "sku"], "expected API_KEY:FIELD_TYPE"),
        (["--field", "sku:varchar"], "unknown field type 'varchar'"),
        (["--field", "sku:string:indexed"], "unknown flag 'indexed'"),
        (["--field", "a:link", "--link-target", "b=movie"], "no field 'b'"),
    ],
)
def test_create__bad_specs_are_usage_errors(
    server: Any, lorry: Lorry, args: list[str], message: str
) -> None:
    result = lorry("types", "create", "thing", "--name", "Thing", *args)

    assert result.exit_code == 2
    assert message in result.stderr
    assert server.requests == []


def test_create__api_error_is_one_line(server: Any, lorry: Lorry) -> None:
    result = lorry("types", "create", "x", "--name", "X", env={"LORRY_TOKEN": "bad"})

    assert result.exit_code == 1
    assert result.stderr == (
        "error: missing or invalid API token (check --token / LORRY_TOKEN)\n"
    )


def test_list__table_and_json(server: Any, lorry: Lorry) -> None:
    server.add_type("movie", {"api_key": "title", "field_type": "string"})

    table = lorry("types", "list")
    as_json = lorry("types", "list", "--json")

    assert table.exit_code == as_json.exit_code == 0
    assert "movie" in table.stdout
    assert "title:string" in table.stdout
    listed = json.loads(as_json.stdout)
    assert [t["attributes"]["api_key"] for t in listed] == ["movie"]
    assert listed[0]["id"] == "T-movie"


def test_url_and_token_options_beat_the_environment(server: Any, lorry: Lorry) -> None:
    result = lorry(
        "types",
        "list",
        "--url",
        "http://other:1",
        "--token",
        "cli-token",
        env={"LORRY_TOKEN": "env-token"},
    )

    assert result.exit_code == 0, result.output
    assert server.clients == [("http://other:1", "cli-token")]
    assert str(server.last.url) == "http://other:1/item-types"


def test_help_shows_the_env_vars(lorry: Lorry) -> None:
    result = lorry("types", "list", "--help")

    assert "LORRY_URL" in result.stdout
    assert "LORRY_TOKEN" in result.stdout


def test_no_token_is_a_usage_error(server: Any, lorry: Lorry) -> None:
    result = lorry("types", "list", env={"LORRY_TOKEN": ""})
    assert result.exit_code == 2
    assert "LORRY_TOKEN" in result.stderr
