"""``lorry serve``: the API, with the embedded job workers beside it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["serve"]

log = logging.getLogger(__name__)


def serve(
    host: Annotated[
        str, typer.Option(envvar="LORRY_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="LORRY_PORT", help="Port to listen on.")
    ] = 8000,
    data_dir: Annotated[
        Path,
        typer.Option(envvar="LORRY_DATA_DIR", help="Where the SQLite store lives."),
    ] = Path("lorry-data"),
    workers: Annotated[
        int,
        typer.Option(envvar="LORRY_WORKERS", help="Embedded workers (0: none)."),
    ] = 1,
    worker_mode: Annotated[
        str,
        typer.Option(
            envvar="LORRY_WORKER_MODE",
            help="Run workers as 'process'es (fast) or 'thread's.",
        ),
    ] = "process",
    log_level: Annotated[
        str, typer.Option(envvar="LORRY_LOG_LEVEL", help="debug, info, warning.")
    ] = "info",
) -> None:
    """Start the API server with its embedded job workers."""
    import uvicorn

    from lorry.api.app import create_app
    from lorry.config import Settings
    from lorry.server import DataDirLocked, open_runtime

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings.from_env(
        host=host,
        port=port,
        data_dir=data_dir,
        workers=workers,
        worker_mode=worker_mode,
    )
    try:
        runtime = open_runtime(settings)
    except DataDirLocked as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if runtime.new_admin_token:
        # Shown once: only its hash is stored.
        sys.stdout.write(
            "Admin API token (shown once, keep it):\n"
            f"  {runtime.new_admin_token}\n"
            "Use it as LORRY_TOKEN or 'Authorization: Bearer <token>'.\n"
        )
        sys.stdout.flush()
    app = create_app(runtime)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        access_log=log_level.lower() == "debug",
    )
