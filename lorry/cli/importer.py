"""``lorry import``: upload a CSV, JSON array or NDJSON file as an import job."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

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
    fail,
    parse_pairs,
)
from lorry.cli.display import (
    end_with,
    follow,
    new_progress,
)
from lorry.client import Job
from lorry.client._calls import import_format

__all__ = ["FileFormat", "import_file"]


class FileFormat(StrEnum):
    csv = "csv"
    json = "json"
    ndjson = "ndjson"


class UnknownColumns(StrEnum):
    ignore = "ignore"
    reject = "reject"


def _format(path: Path, given: FileFormat | None) -> str:
    try:
        return import_format(path.name, None if given is None else given.value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--format") from None


def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="A .csv/.tsv, .json or .ndjson/.jsonl file.",
        ),
    ],
    item_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            "-t",
            help="The item type to create (else each record's item_type).",
        ),
    ] = None,
    file_format: Annotated[
        FileFormat | None,
        typer.Option("--format", help="The file's format, if not its extension's."),
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="COLUMN=FIELD",
            help="COLUMN=FIELD: where a column goes (COLUMN= leaves it out).",
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
    upsert_by: Annotated[
        str | None,
        typer.Option(
            "--upsert-by",
            metavar="FIELD",
            help="A unique field: update the item holding the record's value, "
            "create the others.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check everything, write nothing."),
    ] = False,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="The file's encoding (utf-8).")
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option("--delimiter", help="CSV delimiter: , ; | or tab (else sniffed)."),
    ] = None,
    decimal: Annotated[
        str | None,
        typer.Option("--decimal", help='Decimal mark of numbers: "." or ",".'),
    ] = None,
    thousands: Annotated[
        str | None,
        typer.Option(
            "--thousands", help="Thousands separator of numbers: , . ' _ or space."
        ),
    ] = None,
    unknown_columns: Annotated[
        UnknownColumns | None,
        typer.Option(
            "--unknown-columns", help="Columns that match no field: ignore or reject."
        ),
    ] = None,
    chunk_size: ChunkSizeOption = None,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Import a file as items, through an import job.

    The file is streamed to the server, which reads it: columns (or keys) go
    to the field named by --map, else to the field of the same name, else to
    the field named like their snake_case (movieId -> movie_id); columns that
    match no field are listed in the summary. Exits 0 when the job completed,
    3 when it completed with errors, 1 when it failed, 2 on a usage error.
    """
    fmt = _format(file, file_format)
    mapping = parse_pairs(map_, "--map", allow_empty=True)
    link_by = parse_pairs(link, "--link")
    size = file.stat().st_size

    with client_session(url, token, verbose) as client, new_progress() as progress:
        task = progress.add_task("upload", total=size or None, info="")

        def on_upload(sent: int) -> None:
            progress.update(task, completed=sent, info=f"{sent / 1e6:,.1f} MB sent")

        try:
            job: Job = client.items.import_job(
                file,
                type=item_type,
                format=fmt,
                mapping=mapping or None,
                skip_duplicates=skip_duplicates,
                upsert_by=upsert_by,
                link_by=link_by or None,
                dry_run=dry_run,
                encoding=encoding,
                delimiter=delimiter,
                decimal=decimal,
                thousands=thousands,
                unknown_columns=None
                if unknown_columns is None
                else unknown_columns.value,
                chunk_size=chunk_size,
                on_upload=on_upload,
            )
        except OSError as exc:
            fail(f"cannot read {file}: {exc}")
        progress.update(task, completed=size, info="uploaded")
        job = follow(client, job, progress, no_wait)

    end_with(job, no_wait=no_wait, as_json=as_json)
