"""How jobs look in the terminal: progress bars, summaries and tables."""

from collections.abc import Callable, Sequence

import msgspec
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from lorry.cli.common import err, exit_code_for, fail, out, print_json, print_table
from lorry.client import Client, Job, JobResult, JobWaitTimeout

__all__ = [
    "job_table",
    "new_progress",
    "print_job",
    "print_summary",
    "wait_with_progress",
]

_STATUS_STYLES = {
    "completed": "green",
    "completed_with_errors": "yellow",
    "failed": "red",
    "cancelled": "red",
}


def new_progress() -> Progress:
    """A progress display on stderr. Off a terminal it stays silent: redrawn
    bars make no sense in a log file, and the summary that follows says it all."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )


def _counts(job: Job) -> str:
    details = job.attributes.details
    parts = [job.attributes.status]
    if details.processed is not None:
        total = "?" if details.total is None else f"{details.total:,}"
        parts.append(f"{details.processed:,}/{total} items")
    if details.failed:
        parts.append(f"{details.failed:,} failed")
    if details.items_per_second:
        parts.append(f"{details.items_per_second:,.0f}/s")
    if details.eta_seconds is not None and not job.is_finished:
        parts.append(f"eta {details.eta_seconds:,.0f} s")
    return " · ".join(parts)


def wait_with_progress(
    client: Client, job: Job, progress: Progress, timeout: float | None = None
) -> Job:
    """Wait for the job, drawing its progress; exit 1 on timeout or Ctrl-C."""
    task = progress.add_task("job", total=1.0, info=_counts(job))

    def show(current: Job) -> None:
        progress.update(
            task, completed=current.attributes.progress, info=_counts(current)
        )

    try:
        return client.jobs.wait(job, on_progress=show, timeout=timeout)
    except JobWaitTimeout as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(
            f"stopped waiting; job {job.id} keeps running "
            f"(follow it with: lorry jobs wait {job.id})"
        )


def _status(job: Job) -> Text:
    status = job.attributes.status
    return Text(status, style=_STATUS_STYLES.get(status, ""))


def print_summary(job: Job, console: Console = err, max_errors: int = 5) -> None:
    """Status, counts and the first few per-item errors of a job."""
    attributes = job.attributes
    _line(console, Text.assemble("job ", job.id, " ", _status(job)))
    result = attributes.result
    if result is not None:
        _line(
            console,
            Text(
                f"processed {result.processed_items:,} · "
                f"successful {result.successful_items:,} · "
                f"failed {result.failed_items:,} · "
                f"skipped {result.skipped_items:,}"
                + (
                    f" · never run {result.unprocessed_items:,}"
                    if result.unprocessed_items
                    else ""
                )
            ),
        )
        if result.created_items is not None and result.updated_items:
            _line(
                console,
                Text(
                    f"created {result.created_items:,} · "
                    f"updated {result.updated_items:,}"
                ),
            )
        unknown = attributes.details.unknown_columns
        if unknown:
            _line(console, Text(f"columns that went to no field: {', '.join(unknown)}"))
        if result.errors:
            _print_errors(job.id, result, console, max_errors)
    if attributes.error is not None:
        error = attributes.error
        _line(
            console, Text.assemble(("error: ", "red"), error.code, ": ", error.message)
        )


def _print_errors(
    job_id: str, result: JobResult, console: Console, max_errors: int
) -> None:
    shown = result.errors[:max_errors]
    total = max(result.failed_items, len(result.errors))
    _line(console, Text(f"first {len(shown)} of {total:,} errors:"))
    for error in shown:
        where = "-" if error.index is None else str(error.index)
        if error.line is not None:
            where += f" line {error.line}"
        field = error.field or "-"
        if error.column is not None and error.column != error.field:
            field += f" (column {error.column})"
        _line(
            console,
            Text.assemble(
                f"  #{where} ",
                (field, "cyan"),
                " ",
                (error.code, "yellow"),
                f" {error.message}",
            ),
        )
    if total > len(shown):
        _line(console, Text(f"  all of them: lorry jobs show {job_id} --json"))


def _when(timestamp: str | None) -> str:
    """``2026-12-03T10:00:00.123456Z`` -> ``2026-12-03 10:00:00``."""
    return timestamp[:19].replace("T", " ") if timestamp else "-"


def _line(console: Console, text: Text) -> None:
    console.print(text, highlight=False, soft_wrap=True)


def print_job(job: Job) -> None:
    """The job in full, for ``lorry jobs show``."""
    attributes = job.attributes
    table = Table.grid(padding=(0, 2))
    table.add_row("id", job.id)
    table.add_row("kind", attributes.kind)
    table.add_row("status", _status(job))
    table.add_row("progress", f"{attributes.progress:.0%}  {_counts(job)}")
    for name in ("created_at", "started_at", "finished_at", "expires_at"):
        table.add_row(name.replace("_", " "), _when(getattr(attributes, name)))
    if attributes.options:
        options = msgspec.json.encode(attributes.options).decode()
        table.add_row("options", options)
    if attributes.parent_job_id:
        table.add_row("retry of", attributes.parent_job_id)
    if attributes.retries:
        table.add_row("retried by", ", ".join(attributes.retries))
    print_table(table)
    if attributes.result is not None or attributes.error is not None:
        out.print()
        print_summary(job, out, max_errors=20)


def job_table(jobs: Sequence[Job]) -> Table:
    table = Table("id", "kind", "status", "progress", "items", "created at")
    for column in (table.columns[0], table.columns[2]):
        column.no_wrap = True
    for job in jobs:
        details = job.attributes.details
        items = "" if details.processed is None else f"{details.processed:,}"
        if details.total is not None:
            items += f"/{details.total:,}"
        table.add_row(
            job.id,
            job.attributes.kind,
            _status(job),
            f"{job.attributes.progress:.0%}",
            items,
            _when(job.attributes.created_at),
        )
    return table


def follow(client: Client, job: Job, progress: Progress, no_wait: bool) -> Job:
    """Wait for a job just accepted, with its bar, unless told not to."""
    if no_wait:
        err.print(f"job {job.id} accepted; follow it: lorry jobs wait {job.id}")
        return job
    return wait_with_progress(client, job, progress)


def end_with(
    job: Job,
    *,
    no_wait: bool,
    as_json: bool,
    also: Callable[[Job], None] | None = None,
) -> None:
    """Say how a followed job ended and exit with its code (just its id, or
    it as JSON, when it was not waited for)."""
    if no_wait:
        if as_json:
            print_json(job)
        else:
            typer.echo(job.id)
        return
    print_summary(job)
    if also is not None:
        also(job)
    if as_json:
        print_json(job)
    raise typer.Exit(exit_code_for(job))
