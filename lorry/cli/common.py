"""What every client command shares: options, consoles, the client, errors."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import msgspec
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from lorry.client import (
    AuthenticationError,
    BadRequest,
    Client,
    Job,
    LorryError,
    UnprocessableEntity,
)

__all__ = [
    "DEFAULT_URL",
    "EXIT_COMPLETED_WITH_ERRORS",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "JsonOption",
    "TokenOption",
    "UrlOption",
    "VerboseOption",
    "client_session",
    "err",
    "exit_code_for",
    "fail",
    "make_client",
    "out",
    "parse_pairs",
    "print_json",
    "print_table",
]

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_COMPLETED_WITH_ERRORS = 3

#: Data goes to stdout; progress, warnings and errors to stderr.
out = Console()
err = Console(stderr=True, soft_wrap=True)

UrlOption = Annotated[
    str,
    typer.Option(
        "--url", envvar="LORRY_URL", show_envvar=True, help="Base URL of the server."
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="LORRY_TOKEN",
        show_envvar=True,
        show_default=False,
        help="API token, sent as a bearer token.",
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Log HTTP requests; show tracebacks."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON to stdout, for scripts.")
]
ChunkSizeOption = Annotated[
    int | None, typer.Option("--chunk-size", min=1, help="Items per chunk of the job.")
]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Print the job id once it is accepted.")
]


def make_client(url: str, token: str | None) -> Client:
    """Build the client of a command. Tests replace this to inject a transport."""
    return Client(url, token=token)


@contextmanager
def _request_logging(verbose: bool) -> Iterator[None]:
    """With --verbose, show the client's one DEBUG line per request."""
    if not verbose:
        yield
        return
    logger = logging.getLogger("lorry")
    handler = RichHandler(console=err, show_path=False)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        # Tests run many commands in one process; leave the logger as found.
        logger.removeHandler(handler)
        logger.setLevel(level)


def fail(message: str, *, code: int = EXIT_FAILED) -> NoReturn:
    err.print(Text.assemble(("error: ", "red"), message), highlight=False)
    raise typer.Exit(code)


@contextmanager
def client_session(url: str, token: str | None, verbose: bool) -> Iterator[Client]:
    """Yield a client; report a client error as one line and exit 1."""
    if not token:
        fail(
            "no API token: pass --token or set LORRY_TOKEN "
            "(the first `lorry serve` printed the admin token)",
            code=EXIT_USAGE,
        )
    try:
        with _request_logging(verbose), make_client(url, token) as client:
            yield client
    except AuthenticationError as exc:
        fail(f"{exc} (check --token / LORRY_TOKEN)")
    except (BadRequest, UnprocessableEntity) as exc:
        # The server refused what this command sent: a usage error.
        if verbose:
            err.print_exception()
        fail(str(exc), code=EXIT_USAGE)
    except LorryError as exc:
        if verbose:
            err.print_exception()
        fail(str(exc))


def exit_code_for(job: Job) -> int:
    status = job.attributes.status
    if status == "completed":
        return 0
    if status == "completed_with_errors":
        return EXIT_COMPLETED_WITH_ERRORS
    return EXIT_FAILED


def parse_pairs(
    values: list[str] | None, option: str, *, allow_empty: bool = False
) -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` options; a malformed one is a usage error.
    With ``allow_empty``, ``KEY=`` gives KEY an empty value."""
    pairs: dict[str, str] = {}
    for value in values or []:
        key, sep, target = value.partition("=")
        if not sep or not key.strip() or not (target.strip() or allow_empty):
            raise typer.BadParameter(
                f"expected KEY=VALUE, got {value!r}", param_hint=option
            )
        pairs[key.strip()] = target.strip()
    return pairs


def print_json(value: Any) -> None:
    typer.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


def print_table(table: Table) -> None:
    # Off a terminal nothing limits the width, and an id cut short is of no
    # use to whoever reads the pipe.
    (out if out.is_terminal else Console(width=1_000)).print(table)
