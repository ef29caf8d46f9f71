"""``lorry jobs``: list, show, wait for, cancel, retry and remove background jobs."""

from pathlib import Path
from typing import Annotated, Any

import msgspec
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
    fail,
    print_json,
    print_table,
)
from lorry.cli.display import (
    job_table,
    new_progress,
    print_job,
    print_summary,
    wait_with_progress,
)

__all__ = ["jobs_app"]

jobs_app = typer.Typer(
    help="List, show, wait for, cancel, retry and remove jobs.", no_args_is_help=True
)

JobIdArgument = Annotated[str, typer.Argument(help="The job's id.")]


@jobs_app.command("list")
def list_jobs(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only jobs in this status (comma-separated)."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="Only jobs of this kind (comma-separated)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="How many jobs to show.")
    ] = 30,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """List jobs, newest first."""
    filters = {"status": status, "kind": kind}
    with client_session(url, token, verbose) as client:
        jobs = client.jobs.list(filter=filters, page={"limit": limit})
    if as_json:
        print_json(list(jobs))
        return
    print_table(job_table(jobs))
    if jobs.total_count is not None and jobs.total_count > len(jobs):
        err.print(f"{len(jobs)} of {jobs.total_count:,} jobs; see more with --limit")


@jobs_app.command("show")
def show(
    job_id: JobIdArgument,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Show a job: status, progress, counts and its first errors.

    Exits like ``wait`` once the job has ended (0 completed, 3 completed with
    errors, 1 failed or cancelled), and 0 while it still runs.
    """
    with client_session(url, token, verbose) as client:
        job = client.jobs.find(job_id)
    if as_json:
        print_json(job)
    else:
        print_job(job)
    if job.is_finished:
        raise typer.Exit(exit_code_for(job))


@jobs_app.command("wait")
def wait(
    job_id: JobIdArgument,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Give up after this many seconds."),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Wait for a job to finish, showing its progress.

    Exits 0 when it completed, 3 when it completed with errors, 1 otherwise.
    """
    with client_session(url, token, verbose) as client:
        job = client.jobs.find(job_id)
        with new_progress() as progress:
            job = wait_with_progress(client, job, progress, timeout)
    print_summary(job)
    if as_json:
        print_json(job)
    raise typer.Exit(exit_code_for(job))


def _read_fixes(path: Path) -> dict[int, Any]:
    """A file of fixes: a JSON object of failed item index -> corrected input."""
    try:
        raw = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        fail(f"cannot read the fixes in {str(path)!r}: {exc}", code=2)
    if not isinstance(raw, dict) or not all(str(k).isdigit() for k in raw):
        fail(
            f"{str(path)!r} must hold a JSON object of failed item index "
            '(as a string, e.g. "3") -> corrected input',
            code=2,
        )
    return {int(k): v for k, v in raw.items()}


@jobs_app.command("retry")
def retry(
    job_id: JobIdArgument,
    fix: Annotated[
        Path | None,
        typer.Option(
            "--fix",
            exists=True,
            dir_okay=False,
            help='A JSON file of corrected inputs by failed item index: {"3": {...}}.',
        ),
    ] = None,
    wait_for_it: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Wait for the new job to finish."),
    ] = True,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Give up waiting after this many s."),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the failed items of a finished job again, as a new job.

    The new job has the same kind and options, and links to the job it
    retries. Exits like ``wait`` (0 completed, 3 completed with errors, 1
    otherwise); with --no-wait, prints the new job's id and exits 0.
    """
    fixes = _read_fixes(fix) if fix is not None else None
    with client_session(url, token, verbose) as client:
        job = client.jobs.retry(job_id, fix=fixes)
        err.print(f"job {job.id} retries the failed items of job {job_id}")
        if not wait_for_it:
            if as_json:
                print_json(job)
            else:
                typer.echo(job.id)
            return
        with new_progress() as progress:
            job = wait_with_progress(client, job, progress, timeout)
    print_summary(job)
    if as_json:
        print_json(job)
    raise typer.Exit(exit_code_for(job))


@jobs_app.command("cancel")
def cancel(
    job_id: JobIdArgument,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Cancel a queued or running job; it stops within one chunk.

    What it applied stays applied; the items it never ran are counted as
    unprocessed (``GET /jobs/ID/unprocessed`` lists them). Exits 0 once the
    job is cancelled, 1 when it had already ended (or is not found).
    """
    with client_session(url, token, verbose) as client:
        job = client.jobs.cancel(job_id)
    print_summary(job)
    if as_json:
        print_json(job)


@jobs_app.command("rm")
def remove(
    job_id: JobIdArgument,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Remove a finished job with its results (and an export's file).

    A job still queued or running is refused: wait for it, or cancel it.
    """
    with client_session(url, token, verbose) as client:
        client.jobs.delete(job_id)
    err.print(f"removed job {job_id}")


@jobs_app.command("purge")
def purge(
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Remove every finished job whose retention has run out, now (admin).

    Prints the jobs removed; the server also purges every few minutes.
    """
    with client_session(url, token, verbose) as client:
        removed = client.jobs.purge()
    if as_json:
        print_json(list(removed))
        return
    if removed:
        print_table(job_table(removed))
    err.print(f"removed {len(removed):,} expired jobs")
