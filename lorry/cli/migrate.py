"""``lorry migrate``: rewrite the items of one type as items of another."""

from typing import Annotated, Any

import msgspec
import typer

from lorry.cli.common import (
    DEFAULT_URL,
    ChunkSizeOption,
    JsonOption,
    NoWaitOption,
    TokenOption,
    UrlOption,
    VerboseOption,
    client_session,
    err,
    parse_pairs,
)
from lorry.cli.display import (
    end_with,
    follow,
    new_progress,
)
from lorry.client import Job

__all__ = ["migrate"]


def _json_or_text(value: str) -> Any:
    """A --set value: JSON when it reads as JSON (42, true, ["a"]), else text."""
    try:
        return msgspec.json.decode(value)
    except msgspec.DecodeError:
        return value


def _filter(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = msgspec.json.decode(value)
    except msgspec.DecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--filter") from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter(
            'expected a JSON object such as {"fields": {"status": "draft"}}',
            param_hint="--filter",
        )
    return parsed


def _print_dry_run(job: Job) -> None:
    details = job.attributes.details
    if details.would_create is None:
        return
    err.print(
        f"dry run: would create {details.would_create:,} · "
        f"would fail {details.would_fail or 0:,}; nothing was written",
        highlight=False,
    )
    for item in details.sample or []:
        err.print(msgspec.json.encode(item).decode(), highlight=False, soft_wrap=True)


def migrate(
    from_type: Annotated[
        str, typer.Option("--from", metavar="TYPE", help="The item type to read.")
    ],
    to_type: Annotated[
        str, typer.Option("--to", metavar="TYPE", help="The item type to write.")
    ],
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="OLD=NEW",
            help="OLD=NEW: the source field OLD goes to the target field NEW.",
        ),
    ] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option("--drop", metavar="FIELD", help="A source field to leave out."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="FIELD=VALUE",
            help="FIELD=VALUE: set a target field on every item (VALUE is read "
            "as JSON if it can be, else as text).",
        ),
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            metavar="JSON",
            help='Which items to migrate, e.g. {"fields": {"status": "draft"}}.',
        ),
    ] = None,
    delete_source: Annotated[
        bool,
        typer.Option(
            "--delete-source",
            help="Move: delete the sources; links to them follow the new items.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check and map everything, write nothing."),
    ] = False,
    chunk_size: ChunkSizeOption = None,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Migrate the items of one type to another, through a migration job.

    Each source field goes to the field --map names, else to the target
    field of the same name, if there is one; --drop leaves a field out and
    --set gives a target field one value for every item. Without
    --delete-source the items are copied. Exits 0 when the job completed,
    3 when it completed with errors, 1 when it failed, 2 on a usage error.
    """
    mapping: dict[str, str | None] = dict(parse_pairs(map_, "--map"))
    for key in drop or []:
        mapping[key.strip()] = None
    constants = {
        key: _json_or_text(value)
        for key, value in parse_pairs(set_, "--set", allow_empty=True).items()
    }
    filters = _filter(filter_)

    with client_session(url, token, verbose) as client, new_progress() as progress:
        job = client.items.migrate_job(
            from_type=from_type,
            to_type=to_type,
            mapping=mapping,
            constants=constants,
            filter=filters,
            delete_source=delete_source,
            dry_run=dry_run,
            chunk_size=chunk_size,
        )
        job = follow(client, job, progress, no_wait)

    end_with(job, no_wait=no_wait, as_json=as_json, also=_print_dry_run)
