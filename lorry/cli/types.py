"""``lorry types``: create and list item types."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lorry.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    VerboseOption,
    client_session,
    parse_pairs,
    print_json,
    print_table,
)
from lorry.schema.fields import FIELD_TYPES

__all__ = ["parse_field_spec", "types_app"]

types_app = typer.Typer(help="Create and list item types.", no_args_is_help=True)

_FLAGS = frozenset({"required", "unique"})


def parse_field_spec(spec: str) -> dict[str, Any]:
    """``sku:string:required,unique`` -> a field definition."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise typer.BadParameter(
            f"expected API_KEY:FIELD_TYPE[:FLAG,FLAG], got {spec!r}",
            param_hint="--field",
        )
    api_key, field_type = parts[0], parts[1]
    if field_type not in FIELD_TYPES:
        choices = ", ".join(sorted(FIELD_TYPES))
        raise typer.BadParameter(
            f"unknown field type {field_type!r} in {spec!r}; choose from {choices}",
            param_hint="--field",
        )
    field: dict[str, Any] = {"api_key": api_key, "field_type": field_type}
    flags = [flag for flag in (parts[2].split(",") if len(parts) == 3 else []) if flag]
    for flag in flags:
        if flag not in _FLAGS:
            raise typer.BadParameter(
                f"unknown flag {flag!r} in {spec!r}; use required and/or unique",
                param_hint="--field",
            )
        field[flag] = True
    return field


def _read_file(path: Path) -> dict[str, Any]:
    """Attributes from ``--file``: a list of fields, or the whole object."""
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(
            f"cannot read {path}: {exc}", param_hint="--file"
        ) from exc
    if isinstance(content, list):
        return {"fields": content}
    if isinstance(content, dict):
        return content
    raise typer.BadParameter(
        f"{path} must hold a list of fields or an attributes object",
        param_hint="--file",
    )


def _set_validator(
    fields: list[dict[str, Any]], option: str, name: str, key: str, value: Any
) -> None:
    for field in fields:
        if field.get("api_key") == name:
            field.setdefault("validators", {})[key] = value
            return
    raise typer.BadParameter(f"no field {name!r} is defined", param_hint=option)


def _values(text: str) -> list[str]:
    return [value.strip() for value in text.split(",") if value.strip()]


@types_app.command("create")
def create(
    api_key: Annotated[str, typer.Argument(help="The item type's api_key.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Human-readable name.")
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field",
            metavar="SPEC",
            help="API_KEY:FIELD_TYPE[:required,unique], e.g. sku:string:unique.",
        ),
    ] = None,
    link_target: Annotated[
        list[str] | None,
        typer.Option(
            "--link-target",
            metavar="FIELD=TYPE",
            help="FIELD=TYPE[,TYPE]: what a link field points at.",
        ),
    ] = None,
    enum: Annotated[
        list[str] | None,
        typer.Option(
            "--enum",
            metavar="FIELD=VALUES",
            help="FIELD=VALUE,VALUE: an enum field's values.",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            help="JSON file: a list of fields, or the whole attributes object.",
        ),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Create an item type and print its api_key and id."""
    attributes = _read_file(file) if file is not None else {}
    fields = [dict(item) for item in attributes.get("fields", [])]
    fields += [parse_field_spec(spec) for spec in field or []]
    for target_field, targets in parse_pairs(link_target, "--link-target").items():
        _set_validator(
            fields, "--link-target", target_field, "item_types", _values(targets)
        )
    for enum_field, values in parse_pairs(enum, "--enum").items():
        _set_validator(fields, "--enum", enum_field, "enum", _values(values))
    name = name or attributes.get("name")
    if not name:
        raise typer.BadParameter("give the item type a name", param_hint="--name")
    for f in fields:
        validators = f.get("validators") or {}
        if f.get("field_type") in ("link", "links") and not validators.get(
            "item_types"
        ):
            raise typer.BadParameter(
                f"say what link field {f.get('api_key')!r} points at, e.g. "
                f"--link-target {f.get('api_key')}=TYPE",
                param_hint="--link-target",
            )

    with client_session(url, token, verbose) as client:
        item_type = client.item_types.create(api_key=api_key, name=name, fields=fields)
    if as_json:
        print_json(item_type)
    else:
        typer.echo(f"{item_type.attributes.api_key}\t{item_type.id}")


@types_app.command("list")
def list_types(
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """List the item types and their fields."""
    with client_session(url, token, verbose) as client:
        item_types = client.item_types.list()
    if as_json:
        print_json(list(item_types))
        return
    table = Table("api_key", "name", "fields", "id")
    for column in (table.columns[0], table.columns[3]):
        column.no_wrap = True
    for item_type in item_types:
        fields = ", ".join(
            f"{field.get('api_key')}:{field.get('field_type')}"
            for field in item_type.attributes.fields
        )
        table.add_row(
            item_type.attributes.api_key,
            item_type.attributes.name,
            fields,
            item_type.id,
        )
    print_table(table)
