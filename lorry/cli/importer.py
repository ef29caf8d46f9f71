"""``lorry import``: load a CSV, JSON array or NDJSON file as items."""

from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.text import Text

from lorry.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    VerboseOption,
    client_session,
    err,
    exit_code_for,
    fail,
    parse_pairs,
    print_json,
)
from lorry.cli.display import new_progress, print_summary, wait_with_progress
from lorry.cli.mapping import ItemBuilder
from lorry.cli.readers import (
    InputError,
    open_input,
    read_csv,
    read_json_array,
    read_ndjson,
)
from lorry.client import Client, ItemType, Job, NotFound

__all__ = ["FileFormat", "detect_format", "import_file"]


class FileFormat(StrEnum):
    csv = "csv"
    json = "json"
    ndjson = "ndjson"


_SUFFIXES = {
    ".csv": FileFormat.csv,
    ".json": FileFormat.json,
    ".ndjson": FileFormat.ndjson,
    ".jsonl": FileFormat.ndjson,
}


def detect_format(path: Path, given: FileFormat | None) -> FileFormat:
    if given is not None:
        return given
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise typer.BadParameter(
            f"cannot tell the format of {path.name!r} from its extension; "
            "give --format csv, json or ndjson",
            param_hint="--format",
        )
    return found


def _delimiter(text: str) -> str:
    if text in ("\\t", "tab"):
        return "\t"
    if len(text) != 1:
        raise typer.BadParameter(
            f"expected one character, got {text!r}", param_hint="--delimiter"
        )
    return text


def _find_type(client: Client, api_key: str) -> ItemType:
    try:
        return client.item_types.find(api_key)
    except NotFound:
        raise typer.BadParameter(
            f"item type {api_key!r} does not exist (see: lorry types list)",
            param_hint="--type",
        ) from None


def _link_value_type(
    client: Client, field: Mapping[str, Any], target_field: str
) -> str | None:
    """The type of the values a ``link_by`` field is given, so that CSV text
    can be converted to it; ``None`` when it cannot be known for sure."""
    targets = (field.get("validators") or {}).get("item_types") or []
    if len(targets) != 1:
        return None
    try:
        target = client.item_types.find(targets[0])
    except NotFound:
        return None
    for candidate in target.attributes.fields:
        if candidate.get("api_key") == target_field:
            return candidate.get("field_type")
    raise typer.BadParameter(
        f"item type {targets[0]!r} has no field {target_field!r}",
        param_hint="--link",
    )


def _builder(
    client: Client,
    item_type: ItemType,
    overrides: Mapping[str, str],
    link_by: Mapping[str, str],
    coerce_text: bool,
) -> ItemBuilder:
    api_key = item_type.attributes.api_key
    fields = {str(field["api_key"]): field for field in item_type.attributes.fields}
    for column, name in overrides.items():
        if name not in fields:
            raise typer.BadParameter(
                f"cannot map {column!r}: {api_key!r} has no field {name!r}",
                param_hint="--map",
            )
    link_value_types: dict[str, str | None] = {}
    for name, target_field in link_by.items():
        if fields.get(name, {}).get("field_type") not in ("link", "links"):
            raise typer.BadParameter(
                f"{name!r} is not a link field of {api_key!r}", param_hint="--link"
            )
        link_value_types[name] = _link_value_type(client, fields[name], target_field)

    def warn(message: str) -> None:
        err.print(
            Text.assemble(("warning: ", "yellow"), message),
            highlight=False,
            soft_wrap=True,
        )

    return ItemBuilder(
        api_key,
        item_type.attributes.fields,
        overrides=overrides,
        link_value_types=link_value_types,
        coerce_text=coerce_text,
        warn=warn,
    )


def _upload(
    client: Client,
    path: Path,
    file_format: FileFormat,
    delimiter: str,
    builder: ItemBuilder,
    progress: Progress,
    *,
    skip_duplicates: bool,
    link_by: Mapping[str, str] | None,
    chunk_size: int | None,
) -> Job:
    """Stream the file to a bulk create job, item by item as it is read."""
    with open_input(path) as source:
        records: Iterator[Any]
        if file_format is FileFormat.csv:
            header, records = read_csv(
                source.stream, delimiter=delimiter, name=path.name
            )
            # Warn about dropped columns now, not halfway through the upload.
            builder.resolve(header)
        elif file_format is FileFormat.ndjson:
            records = read_ndjson(source.stream, name=path.name)
        else:
            records = read_json_array(source.stream, name=path.name)

        task = progress.add_task("upload", total=source.size or None, info="")
        read = 0

        def items() -> Iterator[Any]:
            nonlocal read
            for record in records:
                read += 1
                yield builder.build(record)

        def on_upload(sent: int) -> None:
            info = f"{read:,} items · {sent / 1e6:,.1f} MB sent"
            progress.update(task, completed=source.bytes_read, info=info)

        job = client.items.bulk_create_job(
            items(),
            skip_duplicates=skip_duplicates,
            link_by=link_by,
            chunk_size=chunk_size,
            on_upload=on_upload,
        )
        progress.update(task, completed=source.size, info=f"{read:,} items sent")
        return job


def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="A .csv, .json or .ndjson/.jsonl file."
        ),
    ],
    item_type: Annotated[
        str, typer.Option("--type", "-t", help="The item type to create.")
    ],
    file_format: Annotated[
        FileFormat | None,
        typer.Option("--format", help="The file's format, if not its extension's."),
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map", metavar="COLUMN=FIELD", help="COLUMN=FIELD: where a column goes."
        ),
    ] = None,
    link: Annotated[
        list[str] | None,
        typer.Option(
            "--link",
            metavar="FIELD=TARGET_FIELD",
            help="FIELD=TARGET_FIELD: the link FIELD holds the target's "
            "TARGET_FIELD value instead of its id.",
        ),
    ] = None,
    skip_duplicates: Annotated[
        bool,
        typer.Option(
            "--skip-duplicates", help="Skip items whose unique values are taken."
        ),
    ] = False,
    chunk_size: Annotated[
        int | None,
        typer.Option("--chunk-size", min=1, help="Items per chunk of the job."),
    ] = None,
    delimiter: Annotated[
        str, typer.Option("--delimiter", help="CSV delimiter (\\t for tab).")
    ] = ",",
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Print the job id once it is accepted."),
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Import a file as items of one item type, through a bulk create job.

    Columns (or keys) go to the field named by --map, else to the field of the
    same name, else to the field named like their snake_case (movieId ->
    movie_id); other columns are ignored. Exits 0 when the job completed,
    3 when it completed with errors, 1 when it failed, 2 on a usage error.
    """
    file_format = detect_format(file, file_format)
    overrides = parse_pairs(map_, "--map")
    link_by = parse_pairs(link, "--link")
    separator = _delimiter(delimiter)

    with client_session(url, token, verbose) as client:
        found = _find_type(client, item_type)
        builder = _builder(
            client, found, overrides, link_by, file_format is FileFormat.csv
        )
        with new_progress() as progress:
            try:
                job = _upload(
                    client,
                    file,
                    file_format,
                    separator,
                    builder,
                    progress,
                    skip_duplicates=skip_duplicates,
                    link_by=link_by or None,
                    chunk_size=chunk_size,
                )
            except (InputError, OSError) as exc:
                fail(str(exc))
            if no_wait:
                err.print(f"job {job.id} accepted; follow it: lorry jobs wait {job.id}")
            else:
                job = wait_with_progress(client, job, progress)

    if no_wait:
        if as_json:
            print_json(job)
        else:
            typer.echo(job.id)
        return
    print_summary(job)
    if as_json:
        print_json(job)
    raise typer.Exit(exit_code_for(job))
