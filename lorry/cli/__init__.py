"""The ``lorry`` command line: ``lorry import``, ``lorry export``, ``lorry migrate``,
``lorry jobs …``; the server commands register themselves below."""

import typer

from lorry.cli.exporter import export_file
from lorry.cli.importer import import_file
from lorry.cli.jobs import jobs_app
from lorry.cli.migrate import migrate
from lorry.cli.types import types_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="lorry",
    help="Lorry: a content API with asynchronous bulk jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Lorry: a content API with asynchronous bulk jobs.

    Client commands take the server from --url / LORRY_URL and the token from
    --token / LORRY_TOKEN.
    """


app.add_typer(types_app, name="types")
app.add_typer(jobs_app, name="jobs")
app.command("import")(import_file)
app.command("migrate")(migrate)


app.command("export")(export_file)


def main() -> None:
    """The ``lorry`` console script."""
    app(prog_name="lorry")


# ---------------------------------------------------------------------------
# Server commands (`lorry serve`, `lorry worker`) are registered here.
# ---------------------------------------------------------------------------
from lorry.cli.serve import serve  # noqa: E402 - grouped with its kind

app.command("serve")(serve)
