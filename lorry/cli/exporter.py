"""``lorry export``: run an export job, then download its file."""

import json
from pathlib import Path
from typing import Annotated

import typer

from lorry.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    VerboseOption,
    client_session,
    err,
    exit_code_for,
    print_json,
)
from lorry.cli.display import new_progress, print_summary, wait_with_progress
from lorry.cli.importer import FileFormat

__all__ = ["export_file"]


def _filter(item_types: list[str] | None, raw: str | None) -> dict[str, object]:
    found: dict[str, object] = {}
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise typer.BadParameter(
                f"not JSON: {exc}", param_hint="--filter"
            ) from None
        if not isinstance(parsed, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--filter")
        found.update(parsed)
    if item_types:
        found["type"] = item_types
    return found


def export_file(
    output: Annotated[
        Path,
        typer.Option("--output", "-o", dir_okay=False, help="Where to write the file."),
    ],
    item_types: Annotated[
        list[str] | None,
        typer.Option(
            "--type", "-t", help="An item type to export (repeat for more; else all)."
        ),
    ] = None,
    file_format: Annotated[
        FileFormat | None,
        typer.Option(
            "--format", "-f", help="json, ndjson or csv (else the output's extension)."
        ),
    ] = None,
    fields: Annotated[
        list[str] | None,
        typer.Option("--field", help="Keep only this field (repeat for more)."),
    ] = None,
    order_by: Annotated[
        str | None,
        typer.Option("--order-by", help="A field or timestamp; -FIELD for descending."),
    ] = None,
    filter_json: Annotated[
        str | None,
        typer.Option(
            "--filter",
            metavar="JSON",
            help='A filter as the API takes it: {"fields": {"price": {"gt": 10}}}.',
        ),
    ] = None,
    depth: Annotated[
        int,
        typer.Option(
            "--include-relationships",
            min=0,
            help="Also export the items linked from these, this many links away.",
        ),
    ] = 0,
    bom: Annotated[
        bool, typer.Option("--bom", help="CSV: start with a BOM (for Excel).")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Export items to a file, through an export job.

    The server writes the file from one consistent snapshot; the command
    waits for the job with a progress bar, downloads the file and checks its
    SHA-256. Exits 0 when the file is written, 1 when the job failed, 2 on a
    usage error.
    """
    fmt = file_format.value if file_format is not None else _by_suffix(output)
    filters = _filter(item_types, filter_json)
    if not output.parent.is_dir():
        # Said now, not after the whole export has run.
        raise typer.BadParameter(
            f"the folder {str(output.parent)!r} does not exist", param_hint="--output"
        )

    with client_session(url, token, verbose) as client, new_progress() as progress:
        job = client.items.export_job(
            filter=filters or None,
            format=fmt,
            fields=fields,
            order_by=order_by,
            include_relationships=depth,
            bom=bom,
        )
        job = wait_with_progress(client, job, progress)
        if job.attributes.status == "completed":
            result = job.attributes.result
            size = result.size if result is not None else None
            task = progress.add_task("download", total=size or None, info="")

            def on_download(received: int) -> None:
                info = f"{received / 1e6:,.1f} MB"
                progress.update(task, completed=received, info=info)

            client.exports.download(job, output, on_download=on_download)

    print_summary(job)
    if job.attributes.status == "completed":
        result = job.attributes.result
        count = result.item_count if result is not None else 0
        err.print(f"wrote {count or 0:,} items to {output}", highlight=False)
    if as_json:
        print_json(job)
    raise typer.Exit(exit_code_for(job))


def _by_suffix(output: Path) -> str:
    suffix = output.suffix.lower().lstrip(".")
    found = {"json": "json", "ndjson": "ndjson", "jsonl": "ndjson", "csv": "csv"}
    if suffix not in found:
        raise typer.BadParameter(
            f"cannot tell the format from {output.name!r}; give --format",
            param_hint="--format",
        )
    return found[suffix]
